"""What the app itself costs per request, with the server and the network taken away.

    uv run --locked python bench/dispatch_cost.py [--requests 20000]

Calls each ASGI app directly (a fixed POST scope, an in-memory receive and send) on
uvloop, one request after another, pinned to one CPU like the throughput benchmark's
servers: the bare ASGI app, plain FastAPI, and flowhost's ``ServingApp``. For
flowhost it then switches off one part of the hot path at a time (in this process
only: the access log by its level, the rest by swapping a module attribute) and
reports what each part costs per request. The ablations are measurements, not
proposed code.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
import tempfile
import time
import types
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import uvloop
from rich.console import Console
from rich.table import Table

import flowhost.services.runtime.dispatch as dispatch
from flowhost.services.runtime import create_app
from flowhost.services.runtime.logs import ACCESS, configure_logging

APPS = Path(__file__).resolve().parent / "apps"
sys.path.insert(0, str(APPS))  # the apps' own imports (bench_models) resolve from there
bare_app: Any = importlib.import_module("asgi_app").app
fastapi_app: Any = importlib.import_module("fastapi_app").app
BenchClassify: Any = importlib.import_module("flowhost_service").BenchClassify

BODY = b'{"text":"hello flowhost"}'
App = Callable[..., Any]


def scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": BODY, "more_body": False}


async def per_request_us(app: App, path: str, n: int) -> float:
    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    s = scope(path)
    for _ in range(min(n, 2000)):  # warm up
        await app(dict(s), receive, send)
    if set(status) != {200}:
        raise RuntimeError(f"{path}: answered {sorted(set(status))}")
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            await app(dict(s), receive, send)
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


class _NoMetric:
    """Stands in for EndpointMetrics (and its in-flight gauge): every call does nothing."""

    def __init__(self) -> None:
        self.in_flight = self

    def inc(self, *_: object) -> None: ...
    def dec(self, *_: object) -> None: ...
    def record(self, *_: object) -> None: ...


@asynccontextmanager
async def _no_timeout(_: float | None) -> AsyncIterator[None]:
    yield


@contextmanager
def patched(obj: object, name: str, value: object) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def _ablations(handler: Any) -> list[tuple[str, list[Any]]]:
    """(label, context managers that switch one part of the hot path off), then all."""

    def parts() -> list[tuple[str, Any]]:
        fake_uuid = types.SimpleNamespace(uuid4=lambda: types.SimpleNamespace(hex="0" * 32))
        fake_asyncio = types.SimpleNamespace(**vars(asyncio))
        fake_asyncio.timeout = _no_timeout
        return [
            ("access log off", patched(ACCESS, "disabled", True)),
            ("no per-request asyncio.timeout", patched(dispatch, "asyncio", fake_asyncio)),
            ("no uuid4 request id", patched(dispatch, "uuid", fake_uuid)),
            ("no Prometheus metrics", patched(handler, "metrics", _NoMetric())),
        ]

    return [(label, [ctx]) for label, ctx in parts()] + [
        ("all four off", [ctx for _, ctx in parts()])
    ]


async def run(n: int) -> list[tuple[str, str, float]]:
    flowhost_app = create_app(BenchClassify)
    flowhost_app.state.start(None).join()  # what the ASGI lifespan startup does
    rows: list[tuple[str, str, float]] = []
    rows.append(("bare ASGI (fixed JSON)", "-", await per_request_us(bare_app, "/classify", n)))
    for variant, path in (("def", "/classify"), ("async def", "/classify_async")):
        rows.append(("FastAPI", variant, await per_request_us(fastapi_app, path, n)))
        rows.append(("flowhost", variant, await per_request_us(flowhost_app, path, n)))
        for label, ctxs in _ablations(flowhost_app.handlers[path]):
            with ExitStack() as stack:
                for ctx in ctxs:
                    stack.enter_context(ctx)
                rows.append((f"flowhost, {label}", variant, await per_request_us(
                    flowhost_app, path, n)))  # fmt: skip
    flowhost_app.executor.shutdown(wait=False)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description="Per-request cost of each ASGI app.")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--cpu", type=int, default=0, help="pin to this CPU (-1: do not)")
    args = parser.parse_args()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    with tempfile.TemporaryDirectory() as tmp:
        # stderr to a file, as when a server's log is redirected; logging as flowhost serve
        log_file = (Path(tmp) / "stderr.log").open("w", buffering=1)
        real_stderr, sys.stderr = sys.stderr, log_file
        try:
            configure_logging("info")
            logging.getLogger("flowhost.instance").setLevel(logging.WARNING)
            rows = uvloop.run(run(args.requests))
        finally:
            sys.stderr = real_stderr
            log_file.close()
    base = {v: us for name, v, us in rows if name == "flowhost"}
    table = Table(title=f"in-process cost per request (best of 3 x {args.requests:,})")
    for col in ("app", "endpoint", "µs/request", "flowhost part"):
        table.add_column(col, justify="left" if col in ("app", "endpoint") else "right")
    for name, variant, us in rows:
        part = f"{base[variant] - us:.1f}" if name.startswith("flowhost, ") else ""
        table.add_row(name, variant, f"{us:.1f}", part)
    Console(width=120).print(table)
    out = APPS.parent / "results" / "dispatch_cost.json"
    out.parent.mkdir(exist_ok=True)
    data = [{"app": a, "endpoint": v, "us_per_request": round(us, 2)} for a, v, us in rows]
    out.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
