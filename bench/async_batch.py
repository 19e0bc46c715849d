"""One batch of asynchronous requests against a running platform, and its numbers.

:func:`run_batch` submits ``count`` requests from concurrent httpx clients, waits until
every one is finished, reads each request's record and sums it up (submit rate,
completion throughput, latency and its parts, instances, CPU per request). Used by
bench/async_throughput.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from harness import BODY, CLK_TCK, EXPECTED, descendants, machine_busy_seconds, proc_stats
from rich.console import Console

__all__ = ["Cpu", "Watch", "instance_counts", "pct", "run_batch"]

FINISHED = ("succeeded", "failed", "expired")
console = Console(stderr=True, highlight=False)

# -- small helpers -------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.999999) - 1))]


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


@dataclass
class Cpu:
    """CPU seconds so far: the platform process, its descendants (instances, launcher),
    this benchmark, and the whole machine."""

    platform: float
    instances: float
    client: float
    machine: float
    wall: float

    @classmethod
    def now(cls, platform_pid: int) -> Cpu:
        stats = proc_stats()
        tree = descendants(platform_pid, stats) - {platform_pid}
        mine = os.times()
        return cls(
            platform=stats[platform_pid].cpu_ticks / CLK_TCK if platform_pid in stats else 0.0,
            instances=sum(stats[p].cpu_ticks for p in tree if p in stats) / CLK_TCK,
            client=mine.user + mine.system,
            machine=machine_busy_seconds(),
            wall=time.monotonic(),
        )

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(
            self.platform - other.platform,
            self.instances - other.instances,
            self.client - other.client,
            self.machine - other.machine,
            self.wall - other.wall,
        )

    def cores(self) -> dict[str, float]:
        """Each part's CPU over the wall time, in cores; "others" is the rest of the machine."""
        mine = self.platform + self.instances + self.client
        return {
            "platform": self.platform / self.wall,
            "instances": self.instances / self.wall,
            "client": self.client / self.wall,
            "machine": self.machine / self.wall,
            "others": max(0.0, self.machine - mine) / self.wall,
        }


@dataclass
class Watch:
    """The version's instances, sampled while a batch runs."""

    at_start: int = 0
    peak: int = 0
    samples: list[tuple[float, int, int, int]] = field(
        default_factory=list[tuple[float, int, int, int]]
    )  # (seconds since start, ready, starting, queued)


# -- one batch -------------------------------------------------------------------------


async def instance_counts(client: httpx.AsyncClient, service: str) -> dict[str, Any]:
    response = await client.get(f"/api/services/{service}")
    response.raise_for_status()
    return response.json()["instances"]["v1"]


async def _watch(client: httpx.AsyncClient, service: str, watch: Watch, t0: float) -> None:
    while True:
        with contextlib.suppress(httpx.HTTPError):
            now = await instance_counts(client, service)
            watch.samples.append(
                (round(time.perf_counter() - t0, 3), now["ready"], now["starting"], now["queued"])
            )
            watch.peak = max(watch.peak, now["ready"])
        await asyncio.sleep(0.25)


async def _status(client: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    response = await client.get(f"/requests/{request_id}")
    response.raise_for_status()
    return response.json()


async def _statuses(
    client: httpx.AsyncClient, ids: list[str], concurrency: int
) -> list[dict[str, Any]]:
    limit = asyncio.Semaphore(concurrency)

    async def one(request_id: str) -> dict[str, Any]:
        async with limit:
            return await _status(client, request_id)

    return list(await asyncio.gather(*(one(i) for i in ids)))


async def run_batch(
    base: str,
    service: str,
    endpoint: str,
    count: int,
    submitters: int,
    *,
    limit: float,
    platform_pid: int,
) -> dict[str, Any]:
    """Submit ``count`` requests, wait until every one is finished, read their records."""
    deadline = time.monotonic() + limit
    url = f"/{service}/{endpoint}/async"
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=submitters + 4, max_keepalive_connections=submitters + 4)
    async with httpx.AsyncClient(
        base_url=base, trust_env=False, timeout=30.0, limits=limits
    ) as client:
        watch = Watch()
        watch.at_start = watch.peak = (await instance_counts(client, service))["ready"]
        ids: list[str | None] = [None] * count
        submit_ms: list[float] = []
        errors: dict[str, int] = {}
        indexes = itertools.count()
        cpu0 = Cpu.now(platform_pid)
        wall0, t0 = time.time(), time.perf_counter()
        watcher = asyncio.create_task(_watch(client, service, watch, t0))

        async def submitter() -> None:
            while (i := next(indexes)) < count:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"submitting took over {limit:g}s")
                started = time.perf_counter()
                try:
                    response = await client.post(url, content=BODY, headers=headers)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                submit_ms.append((time.perf_counter() - started) * 1000)
                if response.status_code == 202:
                    ids[i] = response.json()["id"]
                else:
                    key = f"HTTP {response.status_code}"
                    errors[key] = errors.get(key, 0) + 1
                    if errors[key] <= 3:
                        console.print(f"  [red]submit {key}[/]: {response.text[:300]}")

        try:
            await asyncio.gather(*(submitter() for _ in range(submitters)))
            submitted_at = time.perf_counter()
            accepted = [i for i in ids if i is not None]
            # Wait: poll the newest request alone until it is finished (completion is
            # nearly FIFO), then read every unfinished one; repeat for stragglers.
            records: dict[str, dict[str, Any]] = {}
            pending = list(accepted)
            cpu1: Cpu | None = None
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{service}/{endpoint}: {len(pending)} of {len(accepted)} requests "
                        f"not finished after {limit:g}s"
                    )
                newest = await _status(client, pending[-1])
                if newest["status"] not in FINISHED:
                    await asyncio.sleep(0.05)
                    continue
                if cpu1 is None:
                    cpu1 = Cpu.now(platform_pid)  # before reading every record
                for record in await _statuses(client, pending, concurrency=8):
                    if record["status"] in FINISHED:
                        records[record["id"]] = record
                pending = [i for i in pending if i not in records]
                if pending:
                    await asyncio.sleep(0.05)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        # One result, to check the job really ran the endpoint.
        sample = next((r for r in records.values() if r["status"] == "succeeded"), None)
        if sample is not None:
            got = (await client.get(f"/requests/{sample['id']}/result")).json()
            if got != EXPECTED:
                raise RuntimeError(f"{service}/{endpoint}: the result is {got}, not {EXPECTED}")
    return _summary(
        service, endpoint, count, submitters, wall0, submitted_at - t0, submit_ms, errors,
        list(records.values()), watch, (cpu1 or Cpu.now(platform_pid)) - cpu0,
    )  # fmt: skip


def _summary(
    service: str,
    endpoint: str,
    count: int,
    submitters: int,
    wall0: float,
    submit_seconds: float,
    submit_ms: list[float],
    errors: dict[str, int],
    records: list[dict[str, Any]],
    watch: Watch,
    cpu: Cpu,
) -> dict[str, Any]:
    succeeded = [r for r in records if r["status"] == "succeeded"]
    created = [_ts(r["created_at"]) or 0.0 for r in succeeded]
    started = [_ts(r["started_at"]) or 0.0 for r in succeeded]
    finished = [_ts(r["finished_at"]) or 0.0 for r in succeeded]
    latency = [(f - c) * 1000 for c, f in zip(created, finished, strict=True)]
    queued = [(s - c) * 1000 for c, s in zip(created, started, strict=True)]
    running = [(f - s) * 1000 for s, f in zip(started, finished, strict=True)]
    window = (max(finished) - wall0) if finished else float("nan")
    done = len(succeeded)
    return {
        "service": service,
        "endpoint": endpoint,
        "requests": count,
        "submitters": submitters,
        "accepted": len(records),
        "submit_errors": errors,
        "submit_seconds": submit_seconds,
        "submit_rps": len(records) / submit_seconds,
        "submit_p50_ms": pct(submit_ms, 0.5),
        "submit_p99_ms": pct(submit_ms, 0.99),
        "succeeded": done,
        "failed": sum(r["status"] == "failed" for r in records),
        "expired": sum(r["status"] == "expired" for r in records),
        "redelivered": sum((r["attempts"] or 0) > 1 for r in records),
        "errors_seen": sorted({json.dumps(r["error"]) for r in records if r["error"]})[:5],
        "completion_seconds": window,
        "completed_rps": done / window if done else 0.0,
        "first_completed_ms": (min(finished) - wall0) * 1000 if finished else float("nan"),
        "latency_p50_ms": pct(latency, 0.5) if done else float("nan"),
        "latency_p99_ms": pct(latency, 0.99) if done else float("nan"),
        "latency_max_ms": max(latency) if done else float("nan"),
        "queued_p50_ms": pct(queued, 0.5) if done else float("nan"),
        "running_p50_ms": pct(running, 0.5) if done else float("nan"),
        "running_p99_ms": pct(running, 0.99) if done else float("nan"),
        "instances_at_start": watch.at_start,
        "instances_peak": watch.peak,
        "instance_samples": watch.samples,
        "cpu_seconds": cpu.__dict__,
        "cpu_cores": cpu.cores(),
        "cpu_ms_per_request": {
            k: (v * 1000 / done if done else float("nan"))
            for k, v in cpu.__dict__.items()
            if k != "wall"
        },
    }
