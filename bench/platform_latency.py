"""The local platform's costs: the router's added latency and throughput, and cold starts.

    uv run --locked python bench/platform_latency.py [--seconds 8] [--cold-starts 20]

1. Router: wrk against one instance directly and through ``flowhost up``'s router
   (``/{service}/{endpoint}``), at 1 connection (latency) and 16 (throughput).
2. Cold start: a version at zero instances gets one request through the router; the
   time to its answer is the cold start (the service's initialize does nothing, so this
   is all platform: hold, fork from the pre-imported launcher, load, bind, ready, proxy).
   Repeated after each scale-to-zero. Writes bench/results/platform_latency.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from harness import (
    BENCH,
    BODY,
    ROOT,
    STARTED,
    Server,
    WrkResult,
    ensure_wrk,
    free_port,
    machine_facts,
    otlp_receiver,
    run_wrk,
    wait_quiet,
)
from rich.console import Console
from rich.progress import Progress

RESULTS = BENCH / "results"
APPS = BENCH / "apps"
FLOWHOST = str(Path(sys.executable).parent / "flowhost")
console = Console(stderr=True, highlight=False)


def _call(url: str, method: str = "GET", body: bytes | None = None) -> Any:
    request = urllib.request.Request(url, data=body, method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _instances(base: str, service: str) -> dict[str, Any]:
    return _call(f"{base}/api/services/{service}")["instances"]["v1"]


def _deploy(base: str, path: Path) -> None:
    from flowhost.client import Client

    with Client(base) as client:
        client.deploy(path, promote=True)


def _wait(what: str, check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def router(base: str, seconds: float) -> list[dict[str, Any]]:
    _deploy(base, APPS / "flowhost_service.py")
    port = _instances(base, "bench-classify")["ports"][0]
    rows: list[dict[str, Any]] = []
    for conns in (1, 16):
        for label, url in (
            ("instance directly", f"http://127.0.0.1:{port}/classify_async"),
            ("through the router", f"{base}/bench-classify/classify_async"),
        ):
            wait_quiet(10, log=console.print)
            run_wrk(url, connections=conns, seconds=2)  # warm-up
            result: WrkResult = run_wrk(url, connections=conns, seconds=seconds)
            rows.append({"path": label, "conns": conns, **result.__dict__})
            console.print(
                f"  {label:<20} c={conns:<3} {result.rps:>8,.0f} req/s  p50 {result.p50_ms:.3f} ms"
                f"  p99 {result.p99_ms:.3f} ms"
            )
    return rows


def cold_starts(base: str, count: int) -> list[float]:
    _deploy(base, APPS / "flowhost_cold.py")
    url = f"{base}/bench-cold/classify"
    times: list[float] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("cold starts", total=count)
        for _ in range(count):
            _wait("scale to zero", lambda: _instances(base, "bench-cold")["ready"] == 0)
            time.sleep(0.2)
            started = time.perf_counter()
            answer = _call(url, "POST", BODY)
            times.append(time.perf_counter() - started)
            assert answer == {"label": "short", "length": 14}, answer
            progress.advance(task)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--cold-starts", type=int, default=20)
    parser.add_argument(
        "--traced",
        action="store_true",
        help="run flowhost up with --otlp-endpoint (a receiver in another process): every "
        "request traced by the router and the instance; writes platform_latency-traced.*",
    )
    args = parser.parse_args()
    ensure_wrk()
    RESULTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with contextlib.ExitStack() as stack:
        home = stack.enter_context(tempfile.TemporaryDirectory(prefix="flowhost-bench-"))
        traced: list[str] = []
        if args.traced:
            endpoint, _ = stack.enter_context(otlp_receiver())
            traced = ["--otlp-endpoint", endpoint]
        platform = Server(
            "flowhost up",
            [FLOWHOST, "up", "--home", home, "--port", str(port), "--scaler-tick", "0.05",
             "--scale-down-window", "0", "--log-level", "warning", *traced],
            ROOT, port, RESULTS / "logs" / "platform.log",
        )  # fmt: skip
        console.print(f"[bold]flowhost up[/] on {base}")
        start_platform(platform, base)
        try:
            console.print("[bold]router[/] (added latency and throughput)")
            rows = router(base, args.seconds)
            console.print("[bold]cold starts[/] (a request at zero instances)")
            times = cold_starts(base, args.cold_starts)
        finally:
            platform.stop()
    ms = sorted(t * 1000 for t in times)
    cold = {
        "count": len(ms),
        "p50_ms": statistics.median(ms),
        "p90_ms": ms[int(0.9 * (len(ms) - 1))],
        "max_ms": ms[-1],
        "min_ms": ms[0],
    }
    console.print(
        f"  cold start: p50 {cold['p50_ms']:.0f} ms, p90 {cold['p90_ms']:.0f} ms, "
        f"max {cold['max_ms']:.0f} ms over {cold['count']}"
    )
    report = {"machine": machine_facts(), "router": rows, "cold_start": cold}
    stem = "platform_latency-traced" if args.traced else "platform_latency"
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2))
    (RESULTS / f"{stem}.md").write_text(_markdown(rows, cold))
    print(_markdown(rows, cold))


def start_platform(platform: Server, base: str) -> None:
    """Like ``Server.start``, but ready means the control plane answers ``/api/healthz``."""
    platform.log_path.parent.mkdir(parents=True, exist_ok=True)
    with platform.log_path.open("wb") as log:
        platform.proc = subprocess.Popen(
            platform.command, cwd=platform.cwd, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    STARTED.append(platform.proc)  # stopped with its process group if the bench dies
    _wait("the platform", lambda: _healthy(base), timeout=90)


def _healthy(base: str) -> bool:
    try:
        return _call(f"{base}/api/healthz")["status"] == "alive"
    except OSError:
        return False


def _markdown(rows: list[dict[str, Any]], cold: dict[str, Any]) -> str:
    lines = [
        "| path | conns | req/s | p50 ms | p99 ms |",
        "|---|--:|--:|--:|--:|",
        *(
            f"| {r['path']} | {r['conns']} | {r['rps']:,.0f} | {r['p50_ms']:.3f} | "
            f"{r['p99_ms']:.3f} |"
            for r in rows
        ),
        "",
        "| cold start (request at zero instances, first byte) | ms |",
        "|---|--:|",
        f"| p50 | {cold['p50_ms']:.0f} |",
        f"| p90 | {cold['p90_ms']:.0f} |",
        f"| max | {cold['max_ms']:.0f} |",
        f"| runs | {cold['count']} |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
