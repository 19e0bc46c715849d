"""Starting ``flowhost up`` as a real subprocess on loopback, and driving it like a user."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowhost.client import Client
from tests.integration.support import FLOWHOST, ROOT, free_port, poll

__all__ = [
    "ACTOR",
    "EXAMPLE",
    "SERVICES",
    "Load",
    "Platform",
    "PlatformFactory",
    "accepts_connections",
    "start_platform",
]

HOST = "127.0.0.1"
EXAMPLE = ROOT / "examples" / "services" / "sentiment.py"
SERVICES = Path(__file__).resolve().parent / "services"
ACTOR = "e2e-tests"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def accepts_connections(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((HOST, port)) == 0


@dataclass
class Platform:
    """One ``flowhost up`` process, a raw HTTP client and a ``flowhost.client.Client``."""

    process: subprocess.Popen[bytes]
    home: Path
    port: int
    log_path: Path
    http: httpx.Client = field(init=False)
    client: Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=30.0, trust_env=False)
        self.client = Client(self.url, actor=ACTOR)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            pytest.fail(f"flowhost up exited with code {code}; its log:\n{self.log()[-5000:]}")

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        def healthy() -> bool | None:
            self.check_alive()
            try:
                return self.http.get("/api/healthz").status_code == 200 or None
            except httpx.TransportError:
                return None

        poll(f"{self.url}/api/healthz to answer 200", healthy, timeout)

    def deploy(self, service: Path, **options: Any) -> dict[str, Any]:
        """``Client.deploy`` of a service file; returns the version record."""
        return self.client.deploy(str(service), timeout=60.0, **options)

    def service(self, name: str) -> dict[str, Any]:
        return self.client.service(name)

    def instances(self, name: str, version: int) -> dict[str, Any]:
        """``{"ready", "starting", "in_flight", "ports"}`` of one version; empty if none."""
        return self.service(name)["instances"].get(f"v{version}", {})

    def wait_instances(
        self, name: str, version: int, ready: int, timeout: float = 20.0
    ) -> dict[str, Any]:
        """Poll until ``ready`` instances are up and none is starting."""

        def settled() -> dict[str, Any] | None:
            self.check_alive()
            info = self.instances(name, version)
            return info if info and (info["ready"], info["starting"]) == (ready, 0) else None

        return poll(f"{name} v{version} at {ready} ready instance(s)", settled, timeout)

    def stop(self, sig: signal.Signals = signal.SIGINT) -> int:
        """Stop like Ctrl-C (bounded), then terminate, then kill; returns the exit code."""
        self.http.close()
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                # The launcher shares the process group; instances die with it (PDEATHSIG).
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        return self.process.returncode


def start_platform(
    *options: str, home: Path, env: Mapping[str, str], log_dir: Path, port: int | None = None
) -> Platform:
    """Start ``flowhost up --home home --port port`` and wait until its API answers."""
    port = port or free_port()
    log_path = log_dir / f"up-{home.name}-{port}.log"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [str(FLOWHOST), "up", "--home", str(home), "--port", str(port), *options],
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    platform = Platform(process, home, port, log_path)
    try:
        platform.wait_healthy()
    except BaseException:
        platform.stop()
        raise
    return platform


PlatformFactory = Callable[..., Platform]
"""The ``launch`` fixture: ``launch(*options, home=None, port=None, env=None) -> Platform``."""


class Load:
    """Threads that POST one body to one path until stopped, recording every request.

    Each record is ``(started, status, version header, body)``, ``status`` -1 on a transport
    error (then ``version`` holds the error).
    """

    def __init__(self, url: str, path: str, body: Any, threads: int, limit: int) -> None:
        self.url, self.path, self.body, self.limit = url, path, body, limit
        self.records: list[tuple[float, int, str | None, Any]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30.0, trust_env=False) as http:
            while not self._stop.is_set() and len(self.records) < self.limit:
                started = time.monotonic()
                try:
                    r = http.post(self.path, json=self.body)
                except httpx.HTTPError as exc:
                    self.records.append((started, -1, repr(exc), None))
                    continue
                body = r.json() if r.headers.get("content-type") == "application/json" else None
                self.records.append(
                    (started, r.status_code, r.headers.get("x-flowhost-version"), body)
                )

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=35.0)
        assert not any(t.is_alive() for t in self._threads), "load threads did not stop"

    def count(self, since: float = 0.0) -> int:
        return sum(1 for r in list(self.records) if r[0] >= since)
