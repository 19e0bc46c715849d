"""Starting ``flowhost serve`` as a real subprocess on loopback, and reading what it logs."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

__all__ = [
    "FLOWHOST",
    "ROOT",
    "SERVICES",
    "SentimentRuns",
    "ServeFactory",
    "Server",
    "free_port",
    "isolated_env",
    "poll",
    "run_flowhost",
    "start_server",
    "train_sentiment",
]

ROOT = Path(__file__).resolve().parents[2]
SERVICES = Path(__file__).resolve().parent / "services"
FLOWHOST = Path(sys.executable).with_name("flowhost")  # the venv's console script
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

T = TypeVar("T")

FLOW_FILE = "examples/flows/sentiment_flow.py"


@dataclass(frozen=True)
class SentimentRuns:
    """Two successful runs of the example flow, made in this session."""

    older: str  # trained with --smoothing 5, so its model scores differently
    latest: str  # default parameters; the latest successful run


def isolated_env(home: Path) -> dict[str, str]:
    """The environment of every subprocess the tests start: Metaflow confined to ``home``
    (no user config, a private local datastore), no colors, no platform URL, target or
    targets config leaking in."""
    dropped = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "FLOWHOST_URL",
               "FLOWHOST_TARGET", "FLOWHOST_CONFIG", "FLOWHOST_TOKEN")  # fmt: skip
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("METAFLOW_") and k not in dropped
    }
    env.update(
        USERNAME="flowhost-tests",
        METAFLOW_HOME=str(home / "config"),
        METAFLOW_DATASTORE_SYSROOT_LOCAL=str(home / "datastore"),
        METAFLOW_DEFAULT_METADATA="local",
        METAFLOW_DEFAULT_DATASTORE="local",
        XDG_CONFIG_HOME=str(home / "xdg"),  # no ~/.config/flowhost/config.toml
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def train_sentiment(env: Mapping[str, str], id_file: Path, *params: str) -> str:
    """Runs the example flow for real (with ``params``); the pathspec of the new run."""
    result = subprocess.run(
        [sys.executable, FLOW_FILE, "--quiet", "run", "--run-id-file", str(id_file), *params],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{FLOW_FILE} run failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return f"SentimentFlow/{id_file.read_text().strip()}"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def poll(what: str, check: Callable[[], T | None], timeout: float = 10.0) -> T:
    """Call ``check`` until it returns something other than None; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def run_flowhost(
    *args: str, env: Mapping[str, str], timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run the ``flowhost`` command to completion from the repository root."""
    return subprocess.run(
        [str(FLOWHOST), *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Server:
    """One ``flowhost serve`` process on 127.0.0.1 and an HTTP client pointed at it."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=10.0)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other lines, if any, are skipped)."""
        records: list[dict[str, Any]] = []
        for line in self.log().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)  # pyright: ignore[reportUnknownArgumentType]
        return records

    def access_records(self, request_id: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.log_records()
            if r.get("logger") == "flowhost.access" and r.get("request_id") == request_id
        ]

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        def ready() -> bool | None:
            self.check_alive()
            try:
                return self.client.get("/readyz").status_code == 200 or None
            except httpx.TransportError:
                return None

        poll(f"{self.url}/readyz to answer 200", ready, timeout)

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            pytest.fail(f"flowhost serve exited with code {code}; its log:\n{self.log()}")

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)


def start_server(
    target: str,
    *options: str,
    env: Mapping[str, str],
    log_dir: Path,
    ready: bool = True,
) -> Server:
    """Start ``flowhost serve target`` and wait for /healthz (and /readyz if ``ready``).

    The caller stops the server (``Server.stop``). If the process dies while starting,
    the test fails with the server's log.
    """
    port = free_port()
    log_path = log_dir / f"serve-{Path(target.split(':')[0]).stem}-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(FLOWHOST), "serve", target, "--host", HOST, "--port", str(port), *options],
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, log_path)
    try:

        def healthy() -> bool | None:
            server.check_alive()
            try:
                return server.client.get("/healthz").status_code == 200 or None
            except httpx.TransportError:
                return None

        poll(f"{server.url}/healthz to answer 200", healthy, START_TIMEOUT)
        if ready:
            server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


ServeFactory = Callable[..., Server]
"""The ``serve`` fixture: ``serve(target, *options, ready=True, env=None) -> Server``."""


@contextlib.contextmanager
def moto_clients(endpoint: str) -> Iterator[Callable[[str], Any]]:
    """``make("s3")``: boto3 clients against the moto server at ``endpoint``, closed
    when the block ends."""
    import boto3

    clients: list[Any] = []

    def make(service: str) -> Any:
        client = boto3.client(  # pyright: ignore[reportCallIssue]
            service,  # pyright: ignore[reportArgumentType]
            endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            client.close()
