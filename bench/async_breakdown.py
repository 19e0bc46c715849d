"""Where one asynchronous request's store time goes, without a platform.

    uv run --locked python bench/async_breakdown.py [--requests 2000] [--home-dir DIR]
        [--json PATH|-] [--timeout 1800]

1. Each store operation of the submit (payload put, record insert, queue send) and of
   the worker (receive and claim, succeed), one at a time in this process, on the same
   ports and files as the platform (a state.db, a queues.db, an objects directory).
2. Record inserts (the submit's state.db write) from this process while 0 and then 2
   other processes start and finish the inserted requests, as instances do: the
   write-lock contention between the platform and its instances.

``--requests`` of each, in a temporary directory under ``--home-dir`` (default: the temp
dir). Writes bench/results/async_breakdown.json. The end-to-end numbers come from
bench/async_throughput.py.
"""

from __future__ import annotations

import argparse
import functools
import json
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from async_batch import pct
from async_report import emit
from harness import BENCH, BODY, EXPECTED
from rich.console import Console
from rich.table import Table

RESULTS = BENCH / "results"


def _timed(
    times: dict[str, list[tuple[float, float]]], step: str, fn: Callable[..., Any], *args: Any
) -> Any:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    times.setdefault(step, []).append(
        ((time.perf_counter() - wall) * 1e6, (time.process_time() - cpu) * 1e6)
    )
    return result


def breakdown(count: int, directory: Path) -> list[dict[str, Any]]:
    """The store operations of one request, one at a time in this process, on the same
    ports and files as the platform (a state.db, a queues.db, an objects directory):
    submit = payload put, record insert, queue send; worker = receive (claim: record
    start, payload get), succeed (result put, record finish, queue delete)."""
    from flowhost.lambdas.async_requests.queues import LocalQueues
    from flowhost.lambdas.jobs import QueueJobs, job_message, payload_key
    from flowhost.lambdas.objectstore import LocalObjectStore
    from flowhost.lambdas.store import StateStore
    from flowhost.lambdas.store.requests import RequestStore, new_request_id

    times: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="flowhost-breakdown-", dir=directory) as tmp:
        home = Path(tmp)
        store = StateStore.open(f"sqlite:///{home / 'state.db'}")
        store.migrate()
        requests, objects = RequestStore(store.engine), LocalObjectStore(home / "objects")
        queues = LocalQueues(home / "queues.db", max_receive_count=3)
        queue = queues.queue("bench", 1)
        jobs = QueueJobs(queue, objects, requests, service="bench", version=1, result_ttl=3600)
        for _ in range(count):
            request_id = new_request_id()
            key = payload_key("bench", request_id)
            _timed(times, "submit: payload put (a file)", objects.put, key, BODY)
            insert = functools.partial(
                requests.create, service="bench", endpoint="classify", target="production",
                payload_key=key, timeout_seconds=3600.0, request_id=request_id, version=1,
            )  # fmt: skip
            _timed(times, "submit: record insert (state.db)", insert)
            _timed(times, "submit: queue send (queues.db)", queue.send, job_message(
                request_id, "classify", key))  # fmt: skip
        result = json.dumps(EXPECTED).encode()
        done = 0
        while done < count:
            wall, cpu = time.perf_counter(), time.process_time()
            claimed = jobs.receive(10, 0)
            per = len(claimed) or 1
            for _ in range(per):
                times.setdefault(
                    "worker: receive + claim (queues.db, state.db, a file)", []
                ).append(
                    (
                        (time.perf_counter() - wall) * 1e6 / per,
                        (time.process_time() - cpu) * 1e6 / per,
                    )
                )
            for job in claimed:
                _timed(
                    times,
                    "worker: succeed (a file, state.db, queues.db)",
                    jobs.succeed,
                    job,
                    result,
                )
            done += len(claimed)
        queues.close()
        store.close()
    rows: list[dict[str, Any]] = []
    for step, values in times.items():
        walls, cpus = [w for w, _ in values], [c for _, c in values]
        rows.append(
            {"step": step, "count": len(values), "wall_us_p50": statistics.median(walls),
             "wall_us_mean": statistics.fmean(walls), "cpu_us_mean": statistics.fmean(cpus)}
        )  # fmt: skip
    return rows


def _insert_worker(url: str, ids: Any, stop: Any, out: Any) -> None:
    """A stand-in for an instance's worker: start and finish each request id it is given."""
    from datetime import timedelta

    from flowhost.lambdas.store import StateStore
    from flowhost.lambdas.store.requests import RequestStore

    requests = RequestStore(StateStore.open(url).engine)
    count = 0
    while not stop.is_set():
        try:
            request_id = ids.get(timeout=0.1)
        except Exception:  # queue.Empty
            continue
        requests.start(request_id, 1)
        requests.finish(request_id, "succeeded", ttl=timedelta(hours=1), result_key="r")
        count += 1
    out.put(count)


def contention(count: int, workers: int, directory: Path) -> dict[str, Any]:
    """Record inserts (the submit's state.db write) from this process while ``workers``
    other processes start and finish the inserted requests, as instances do."""
    import multiprocessing

    from flowhost.lambdas.store import StateStore
    from flowhost.lambdas.store.requests import RequestStore, new_request_id

    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="flowhost-contention-", dir=directory) as tmp:
        url = f"sqlite:///{Path(tmp) / 'state.db'}"
        store = StateStore.open(url)
        store.migrate()
        requests = RequestStore(store.engine)
        ids, stop, out = context.Queue(), context.Event(), context.Queue()
        procs = [
            context.Process(target=_insert_worker, args=(url, ids, stop, out))
            for _ in range(workers)
        ]
        for proc in procs:
            proc.start()
        time.sleep(2.0)  # let them import and connect
        latency: list[float] = []
        started = time.perf_counter()
        for _ in range(count):
            request_id = new_request_id()
            t = time.perf_counter()
            requests.create(
                service="bench", endpoint="classify", target="production", payload_key="k",
                timeout_seconds=3600.0, request_id=request_id, version=1,
            )  # fmt: skip
            latency.append((time.perf_counter() - t) * 1000)
            ids.put(request_id)
        seconds = time.perf_counter() - started
        time.sleep(0.5)
        stop.set()
        finished = sum(out.get(timeout=30) for _ in procs)
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
        store.close()
    return {
        "workers": workers, "inserts": count, "inserts_per_s": count / seconds,
        "p50_ms": pct(latency, 0.5), "p99_ms": pct(latency, 0.99), "max_ms": max(latency),
        "finished_by_workers": finished,
    }  # fmt: skip


def _print(count: int, steps: list[dict[str, Any]], fights: list[dict[str, Any]]) -> None:
    table = Table(title=f"one request's store operations, in-process ({count} requests)")
    for header in ("step", "wall µs p50", "wall µs mean", "CPU µs mean"):
        table.add_column(header, justify="left" if header == "step" else "right")
    for row in steps:
        table.add_row(
            row["step"], f"{row['wall_us_p50']:,.0f}", f"{row['wall_us_mean']:,.0f}",
            f"{row['cpu_us_mean']:,.0f}",
        )  # fmt: skip
    fight = Table(title="record inserts while other processes start and finish requests")
    for header in ("other processes", "inserts/s", "p50 ms", "p99 ms", "max ms"):
        fight.add_column(header, justify="right")
    for row in fights:
        fight.add_row(
            str(row["workers"]), f"{row['inserts_per_s']:,.0f}", f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.1f}", f"{row['max_ms']:.1f}",
        )  # fmt: skip
    out = Console(highlight=False, width=120)
    out.print(table)
    out.print(fight)


def _on_alarm(_signum: int, _frame: object) -> None:
    raise SystemExit("async_breakdown: the overall --timeout ran out")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument(
        "--requests", type=int, default=2000,
        help="requests through the store operations, and record inserts per contention run",
    )  # fmt: skip
    parser.add_argument("--home-dir", help="where the temporary stores go (default: the temp dir)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds for everything")
    parser.add_argument("--json", metavar="PATH", help="also write the report here ('-': stdout)")
    args = parser.parse_args()
    if not 1 <= args.requests <= 100_000:
        parser.error("--requests must be 1..100000")
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(args.timeout)
    RESULTS.mkdir(parents=True, exist_ok=True)
    directory = Path(args.home_dir or tempfile.gettempdir())
    steps = breakdown(args.requests, directory)
    fights = [contention(args.requests, k, directory) for k in (0, 2)]
    signal.alarm(0)
    _print(args.requests, steps, fights)
    report = {"directory": str(directory), "steps": steps, "contention": fights}
    (RESULTS / "async_breakdown.json").write_text(json.dumps(report, indent=2))
    if args.json:
        emit(args.json, json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
