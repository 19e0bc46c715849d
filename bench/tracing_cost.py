"""What tracing costs per request in the serving runtime, in-process.

    uv run --locked python bench/tracing_cost.py [--requests 20000]

Calls flowhost's ``ServingApp`` directly (the POST scope of ``dispatch_cost.py``, no
server, no socket) on uvloop, pinned to one CPU, in four configurations: tracing off
(the default: no OTLP endpoint), on and sampled (every request a span, exported over
OTLP/HTTP by the batch processor's thread to a receiver in another process), on with a
caller's ``traceparent`` on every request (a child span; what instances behind the router
see), and on with ``trace_sample_ratio=0`` (spans created but not recorded). Reports
wall-clock µs per request on the event loop and this process's CPU µs per request (which
includes the exporter thread's protobuf encoding and HTTP posts). Writes
bench/results/tracing_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from dispatch_cost import BenchClassify, per_request_us
from harness import ROOT, otlp_receiver
from rich.console import Console
from rich.table import Table

from flowhost.services.runtime import RuntimeSettings, create_app
from flowhost.services.runtime.logs import configure_logging

TRACEPARENT = (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")


def configurations(endpoint: str) -> list[tuple[str, RuntimeSettings, bool]]:
    on = RuntimeSettings(otlp_endpoint=endpoint)
    return [
        ("tracing off (default)", RuntimeSettings(), False),
        ("traced, sampled, exported", on, False),
        ("traced, child of the caller's traceparent", on, True),
        ("traced, sample ratio 0", on.model_copy(update={"trace_sample_ratio": 0.0}), False),
    ]


async def measure(settings: RuntimeSettings, parent: bool, n: int) -> tuple[float, float]:
    app: Any = create_app(BenchClassify, settings)
    app.state.start(None).join()
    calls = 0

    async def counted(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal calls
        calls += 1
        if parent:  # every request comes with a caller's traceparent
            scope["headers"] = [*scope["headers"], TRACEPARENT]
        await app(scope, receive, send)

    cpu0 = time.process_time()
    us = await per_request_us(counted, "/classify", n)
    if app.tracing is not None:
        app.tracing.shutdown()  # the export of what is buffered counts too
    cpu = (time.process_time() - cpu0) / calls * 1e6
    app.executor.shutdown(wait=False)
    return us, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description="Per-request cost of tracing.")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--cpu", type=int, default=0, help="pin to this CPU (-1: do not)")
    args = parser.parse_args()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    rows: list[dict[str, Any]] = []
    with otlp_receiver() as (endpoint, counted), tempfile.TemporaryDirectory() as tmp:
        log_file = (Path(tmp) / "stderr.log").open("w", buffering=1)
        real_stderr, sys.stderr = sys.stderr, log_file
        try:
            configure_logging("warning")  # no access lines: tracing alone
            for label, settings, parent in configurations(endpoint):
                us, cpu = uvloop.run(measure(settings, parent, args.requests))
                rows.append({"configuration": label, "us_per_request": round(us, 2),
                             "cpu_us_per_request": round(cpu, 2)})  # fmt: skip
        finally:
            sys.stderr = real_stderr
            log_file.close()
    received = counted[0]
    table = Table(title=f"tracing cost per request (best of 3 x {args.requests:,}, def endpoint)")
    for col in ("configuration", "µs/request", "CPU µs/request", "+CPU vs off"):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    base = rows[0]["cpu_us_per_request"]
    for row in rows:
        extra = row["cpu_us_per_request"] - base
        table.add_row(row["configuration"], f"{row['us_per_request']:.1f}",
                      f"{row['cpu_us_per_request']:.1f}", f"{extra:+.1f}")  # fmt: skip
    Console(width=120).print(table)
    Console().print(f"spans received by the collector: {received:,}")
    out = ROOT / "bench" / "results" / "tracing_cost.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "spans_received": received}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
