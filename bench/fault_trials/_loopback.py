"""What the state and connection trials share: ``flowhost up`` as a process group on a
loopback port, keep-alive HTTP callers, and percentiles.

Every process started here is stopped (its whole group) when the trial ends, fails or
the interpreter exits; nothing listens anywhere but 127.0.0.1.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "APP",
    "HOST",
    "Caller",
    "Platform",
    "free_port",
    "percentile",
    "report",
    "wait_for",
]

HOST = "127.0.0.1"
BENCH = Path(__file__).resolve().parents[1]
APP = BENCH / "apps" / "flowhost_service.py"  # bench-classify: /classify answers at once
FLOWHOST = str(Path(sys.executable).parent / "flowhost")
BODY = b'{"text":"hello flowhost"}'
_STARTED: list[subprocess.Popen[bytes]] = []


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def wait_for(what: str, check: Any, timeout: float = 60.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def _stop_group(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    with contextlib.suppress(ProcessLookupError):  # instances left behind, if any
        os.killpg(proc.pid, signal.SIGKILL)


@atexit.register
def _stop_all() -> None:
    for proc in list(_STARTED):
        _stop_group(proc, grace=5.0)


class Caller:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:``port``, reopened after errors."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def call(
        self, method: str, path: str, body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names) and body; status 0 for a transport error
        (the body then says which)."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        headers = {"content-type": "application/json"} if body is not None else {}
        try:
            self._conn.request(method, path, body=body, headers=headers)
            response = self._conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return 0, {}, f"{type(exc).__name__}: {exc}".encode()
        if response.will_close:
            self.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def json(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        status, _, payload = self.call(method, path, data)
        if status >= 400 or status == 0:
            raise RuntimeError(f"{method} {path}: {status} {payload[:300]!r}")
        return json.loads(payload)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class Platform:
    """``flowhost up`` on a free loopback port with its home in ``home``."""

    home: Path
    store_url: str | None = None
    options: Sequence[str] = ()
    port: int = field(default_factory=free_port)
    nofile: int | None = None  # a soft RLIMIT_NOFILE for flowhost up (as a service manager sets)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home.parent / f"{self.home.name}-platform.log"

    def start(self, timeout: float = 90.0) -> Platform:
        command = [FLOWHOST, "up", "--home", str(self.home), "--port", str(self.port),
                   "--log-level", "warning", *self.options]  # fmt: skip
        if self.store_url is not None:
            command += ["--store-url", self.store_url]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.home.parent, preexec_fn=self._limits,
            )  # fmt: skip
        _STARTED.append(self.proc)
        caller = Caller(self.port, timeout=2.0)

        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"flowhost up exited ({self.proc.returncode}); see {self.log_path}"
                )
            return caller.call("GET", "/api/healthz")[0] == 200

        wait_for("flowhost up to answer", healthy, timeout, every=0.2)
        caller.close()
        return self

    def _limits(self) -> None:
        if self.nofile is not None:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, hard))

    def deploy(self, path: Path = APP, *, promote: bool = True) -> int:
        from flowhost.client import Client

        with Client(self.url) as client:
            return int(client.deploy(path, promote=promote)["number"])

    def stop(self) -> None:
        if self.proc is not None:
            _stop_group(self.proc)
            if self.proc in _STARTED:
                _STARTED.remove(self.proc)
            self.proc = None

    def __enter__(self) -> Platform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def report(rows: list[dict[str, Any]], text: str, json_path: Path | None, passed: bool) -> int:
    """Print a trial family's table, write its rows as JSON if asked; 0 when every goal
    is met, else 1 (``bench/faults.py``'s exit code)."""
    print(text)
    if json_path is not None:
        json_path.write_text(json.dumps(rows, indent=1))
    return 0 if passed else 1
