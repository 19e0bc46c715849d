"""What one access-log line costs flowhost, in-process, against cheaper ways to write it.

    uv run --locked python bench/access_log_cost.py [--lines 50000]

Times the exact call the serving runtime makes per request
(``ACCESS.info("request", extra={"fields": ...})`` through ``configure_logging``'s
JSON formatter and stderr handler, with stderr redirected to a file as in the
throughput benchmark), then the same line written without the logging machinery.
The alternatives are measurements for comparison, not code flowhost runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from pydantic_core import to_json
from rich.console import Console
from rich.table import Table

from flowhost.services.runtime.logs import ACCESS, configure_logging


def fields() -> dict[str, Any]:
    return {
        "request_id": uuid.uuid4().hex,
        "method": "POST",
        "path": "/classify",
        "endpoint": "classify",
        "status": 200,
        "error_code": None,
        "duration_ms": 0.123,
        "response_bytes": 28,
        "run": None,
    }


def per_call_us(fn: Callable[[], object], n: int) -> float:
    for _ in range(min(n, 2000)):  # warm up
        fn()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description="Cost of one access-log line.")
    parser.add_argument("--lines", type=int, default=50_000)
    args = parser.parse_args()
    n: int = args.lines
    f = fields()
    rows: list[tuple[str, float]] = []

    with tempfile.TemporaryDirectory() as tmp:
        log_file: TextIO = (Path(tmp) / "stderr.log").open("w", buffering=1)  # line-buffered
        real_stderr, sys.stderr = sys.stderr, log_file
        try:
            configure_logging("info")  # binds its handler to the current sys.stderr

            def flowhost_line() -> None:
                ACCESS.info("request", extra={"fields": f})

            us = per_call_us(flowhost_line, n)
            rows.append(("flowhost today: ACCESS.info via logging + JsonFormatter", us))
        finally:
            sys.stderr = real_stderr
            for name in ("flowhost", "uvicorn", "uvicorn.error"):
                logging.getLogger(name).handlers.clear()

        def ts() -> str:
            now = time.time()
            return (
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
                + f".{int(now % 1 * 1000):03d}Z"
            )

        def json_write_flush() -> None:
            line = {"ts": ts(), "level": "info", "logger": "flowhost.access", "message": "request"}
            line.update(f)
            log_file.write(json.dumps(line) + "\n")  # line-buffered: one write(2) per line

        def to_json_write_flush() -> None:
            line = {"ts": ts(), "level": "info", "logger": "flowhost.access", "message": "request"}
            line.update(f)
            log_file.buffer.write(to_json(line) + b"\n")
            log_file.buffer.flush()

        buffered: BinaryIO = (Path(tmp) / "buffered.log").open("wb", buffering=1 << 16)

        def to_json_buffered() -> None:
            line = {"ts": ts(), "level": "info", "logger": "flowhost.access", "message": "request"}
            line.update(f)
            buffered.write(to_json(line) + b"\n")  # flushed by size (or, in a server, a timer)

        rows.append(("json.dumps + write, one write(2) per line", per_call_us(json_write_flush, n)))
        rows.append(("pydantic_core.to_json + write, one write(2) per line",
                     per_call_us(to_json_write_flush, n)))  # fmt: skip
        rows.append(
            ("pydantic_core.to_json into a 64 KiB buffer", per_call_us(to_json_buffered, n))
        )
        buffered.close()
        log_file.close()

    table = Table(title=f"one access-log line (best of 3 x {n:,} lines)")
    table.add_column("how")
    table.add_column("µs per line", justify="right")
    for name, us in rows:
        table.add_row(name, f"{us:.2f}")
    Console().print(table)
    out = Path(__file__).resolve().parent / "results" / "access_log_cost.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({name: round(us, 2) for name, us in rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
