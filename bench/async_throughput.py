"""Asynchronous requests on the local platform: submit rate, completion throughput, latency.

    uv run --locked python bench/async_throughput.py [--requests 2000] [--submitters 4]
        [--repeats 2] [--json PATH|-] [--timeout 1800]

Starts ``flowhost up`` (its defaults, in a temporary home, on a free 127.0.0.1 port),
deploys ``bench/apps/async_service.py`` (a trivial endpoint: ``{"text"}`` in,
``{"label", "length"}`` out) and, per repeat:

1. **warm**, for the ``async def`` and the ``def`` endpoint: a warm-up batch (so the
   version runs its instances and every code path is hot), then ``--requests`` POSTs
   to ``/bench-async/{endpoint}/async`` from ``--submitters`` concurrent httpx clients,
   as fast as the platform takes them. Then it waits until all are finished and reads
   every request's record (``GET /requests/{id}``).
2. **cold**: the same batch to ``bench-async-cold`` once it has scaled to zero
   instances; adds the time from the first submit to the first completed request.

Reported per run: submit rate (202s per second over the submit phase), completion
throughput (requests over the time from the first POST to the last record's
``finished_at``), latency from ``created_at`` to ``finished_at`` (p50, p99, max) with its
parts (queued: to ``started_at``; running: the rest), instances (at the start, the most
seen), failures and redeliveries, and CPU seconds per request of the platform process,
the instances and this client. Writes bench/results/async_throughput.{json,md}; the
platform's and instances' logs are copied to bench/results/logs/async/.

Before each measured run it waits (up to ``--quiet-wait`` s) for the rest of the
machine to go quiet, and redoes a run (``--attempts`` in all, keeping the quietest) when
other processes used more than ``--max-other-load`` cores during it. ``--home-dir``
puts the platform's home elsewhere (``/dev/shm``: no disk flushes, to see their cost).

Everything is bounded: ``--run-timeout`` per batch, ``--timeout`` for the whole
benchmark (then it fails); the platform and its instances are stopped on every exit.

Files:  ``async_batch.py`` runs and sums up one batch, ``async_report.py`` makes the
tables; ``async_breakdown.py`` times one request's store operations without a platform
(where the time goes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from async_batch import instance_counts, run_batch
from async_report import emit, markdown, run_line, summary_table
from harness import BENCH, ROOT, Server, free_port, machine_facts, wait_quiet
from platform_latency import start_platform  # starts `flowhost up`, ready at /api/healthz
from rich.console import Console

RESULTS = BENCH / "results"
SERVICE_FILE = BENCH / "apps" / "async_service.py"
FLOWHOST = str(Path(sys.executable).parent / "flowhost")
WARM, COLD = "bench-async", "bench-async-cold"
console = Console(stderr=True, highlight=False)


# -- the benchmark ---------------------------------------------------------------------


def _deploy(base: str, target: str) -> int:
    from flowhost.client import Client

    with Client(base) as client:
        version = client.deploy(target, promote=True)
    return int(version["number"])


async def _wait_zero(base: str, service: str, limit: float) -> float:
    """Wait until ``service`` runs no instance; returns the seconds waited."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=10.0) as client:
        while True:
            now = await instance_counts(client, service)
            if now["ready"] == 0 and now["starting"] == 0:
                return time.monotonic() - started
            if time.monotonic() - started > limit:
                raise TimeoutError(f"{service} did not scale to zero within {limit:g}s: {now}")
            await asyncio.sleep(0.2)


def _quietest(
    args: argparse.Namespace,
    what: str,
    measure: Callable[[], dict[str, Any]],
    prepare: Callable[[], object] = lambda: None,
) -> dict[str, Any]:
    """Wait for a quiet machine, ``prepare``, ``measure``; again (up to ``--attempts`` in
    all, keeping the quietest) while other processes used over ``--max-other-load``."""
    best: dict[str, Any] | None = None
    for attempt in range(1, args.attempts + 1):
        wait_quiet(args.quiet_wait, log=console.print)
        prepare()
        run = measure()
        run["attempt"] = attempt
        others = run["cpu_cores"]["others"]
        if best is None or others < best["cpu_cores"]["others"]:
            best = run
        if others <= args.max_other_load:
            break
        again = "measuring again" if attempt < args.attempts else "keeping the quietest"
        console.print(f"  {what}: others used {others:.2f} cores during the run; {again}")
    assert best is not None
    return best


def benchmark(args: argparse.Namespace, base: str, platform_pid: int) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    n, s, limit = args.requests, args.submitters, args.run_timeout

    def batch(service: str, endpoint: str, count: int) -> dict[str, Any]:
        return asyncio.run(
            run_batch(base, service, endpoint, count, s, limit=limit, platform_pid=platform_pid)
        )

    waited = 0.0

    def zero() -> None:
        nonlocal waited
        waited = asyncio.run(_wait_zero(base, COLD, limit=120))

    for repeat in range(1, args.repeats + 1):
        console.print(f"[bold]repeat {repeat}/{args.repeats}[/]")
        for endpoint in args.endpoints:
            label = "async def" if endpoint == "classify_async" else "def"
            run = _quietest(
                args, f"warm {label}",
                measure=lambda e=endpoint: batch(WARM, e, n),
                # Right before: brings the version to its instances for this load, hot.
                prepare=lambda e=endpoint: batch(WARM, e, args.warmup),
            )  # fmt: skip
            run.update(kind="warm", label=label, repeat=repeat)
            runs.append(run)
            console.print(f"  warm {label:<9} {run_line(run)}")
        if args.cold:
            run = _quietest(
                args, "cold", prepare=zero,
                measure=lambda: {**batch(COLD, "classify_async", n), "waited_for_zero_s": waited},
            )  # fmt: skip
            run.update(kind="cold", label="async def", repeat=repeat)
            runs.append(run)
            console.print(f"  cold {'async def':<9} {run_line(run)}")
    return runs


# -- main --------------------------------------------------------------------------------


def _log_problems(paths: list[Path]) -> dict[str, int]:
    """Lines at warning level or above (or tracebacks) in the given logs, per file and level."""
    counts: dict[str, int] = {}
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            try:
                level = str(json.loads(line).get("level", ""))
            except (ValueError, AttributeError):
                level = "traceback" if line.startswith("Traceback") else ""
            if level in ("warning", "error", "critical", "traceback"):
                key = f"{path.parent.name}/{path.name}: {level}"
                counts[key] = counts.get(key, 0) + 1
    return counts


def _on_alarm(_signum: int, _frame: object) -> None:
    raise SystemExit("async_throughput: the overall --timeout ran out (the platform is stopped)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per measured run")
    parser.add_argument("--submitters", type=int, default=4, help="concurrent submitting clients")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=200, help="requests before each warm run")
    parser.add_argument(
        "--endpoints", nargs="+", default=["classify_async", "classify"],
        choices=["classify_async", "classify"],
    )  # fmt: skip
    parser.add_argument("--no-cold", dest="cold", action="store_false", help="skip the cold run")
    parser.add_argument(
        "--quiet-wait", type=float, default=30.0,
        help="seconds to wait for the machine to go quiet before each measured run",
    )  # fmt: skip
    parser.add_argument(
        "--max-other-load", type=float, default=0.25,
        help="redo a run when other processes used more cores than this during it",
    )  # fmt: skip
    parser.add_argument("--attempts", type=int, default=3, help="tries per run, at most")
    parser.add_argument("--run-timeout", type=float, default=300.0, help="seconds per batch")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds for everything")
    parser.add_argument(
        "--home-dir", help="where the platform's temporary home goes (default: the temp dir)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the report here ('-': stdout)")
    args = parser.parse_args()
    if not 1 <= args.requests <= 100_000 or not 1 <= args.submitters <= 64:
        parser.error("--requests must be 1..100000 and --submitters 1..64")
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(args.timeout)
    RESULTS.mkdir(parents=True, exist_ok=True)
    logs = RESULTS / "logs" / "async"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="flowhost-bench-async-", dir=args.home_dir) as tmp:
        home = Path(tmp)
        platform = Server(
            "flowhost up", [FLOWHOST, "up", "--home", str(home), "--port", str(port)],
            ROOT, port, logs / "platform.log",
        )  # fmt: skip
        console.print(f"[bold]flowhost up[/] on {base} (home {home})")
        try:
            start_platform(platform, base)
            assert platform.proc is not None
            for target in (f"{SERVICE_FILE}:BenchAsync", f"{SERVICE_FILE}:BenchAsyncCold"):
                number = _deploy(base, target)
                console.print(f"  deployed and promoted {target.rsplit(':', 1)[1]} v{number}")
            runs = benchmark(args, base, platform.proc.pid)
        finally:
            signal.alarm(0)
            platform.stop()
            if (home / "logs").is_dir():
                shutil.copytree(home / "logs", logs / "instances", dirs_exist_ok=True)
    problems = _log_problems(sorted(logs.rglob("*.log")))
    report = {
        "machine": machine_facts() if shutil.which("wrk") else {"cpus": os.cpu_count()},
        "command": "uv run --locked python bench/async_throughput.py " + " ".join(sys.argv[1:]),
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "seconds": round(time.monotonic() - started, 1),
        "log_problems": problems,
        "runs": runs,
    }
    text = json.dumps(report, indent=2)
    (RESULTS / "async_throughput.json").write_text(text)
    (RESULTS / "async_throughput.md").write_text(markdown(runs))
    out = console if args.json == "-" else Console(highlight=False)
    out.width = max(out.width, 160)
    out.print(summary_table(runs))
    if problems:
        console.print(f"[yellow]warnings or errors in the logs[/] ({logs}): {problems}")
    console.print(f"results: {RESULTS / 'async_throughput.json'} and .md")
    if args.json:
        emit(args.json, text)


if __name__ == "__main__":
    main()
