"""CloudWatch Embedded Metric Format (EMF) lines, read from the instance's Prometheus registry.

Every ``interval`` seconds, and once at shutdown, :class:`EmfPublisher` reads what the hot
path already keeps in :class:`InstanceMetrics` (no work per request) and writes to stdout one
JSON line per endpoint (``[Environment, Service, Version, Endpoint]``) and one service line
(``[Environment, Service, Version]``: the endpoints' totals, and ``ColdStarts`` in the first
flush after the instance became ready). Counters are sent as their increase since the
previous flush; ``InFlight`` is the gauge's value (summed over endpoints on the service line).

``RequestDuration`` is approximate: Prometheus keeps bucket counts, not the durations, so the
requests that fell in a bucket are sent as ``Values``/``Counts`` at the bucket's midpoint
(``(0, 1 ms]`` as 0.5 ms; the unbounded last bucket at its lower bound, 1200 s), with ``Min``
and ``Max`` the smallest and largest of those values (the shape the ADOT ``awsemf`` exporter
uses). Percentiles are off by up to half a bucket's width (more in the last, unbounded one);
``Count`` and ``Sum`` are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from pydantic_core import to_json

from flowhost.services.runtime.metrics import InstanceMetrics

__all__ = ["NAMESPACE", "EmfPublisher", "version_dimension", "write_stdout"]

log = logging.getLogger("flowhost.runtime")

NAMESPACE = "flowhost/services"
MAX_METRICS = 100  # EMF's limits per directive; we send at most 6 metrics, 4 dimensions
MAX_DIMENSIONS = 30

# (kind, endpoint, label): kind "status" (label: HTTP status), "le" (bucket bound), "sum"
_Key = tuple[str, str, str]


def version_dimension(label: str) -> str:
    """The EMF ``Version``: the bare number of a ``v<N>`` label (``"v3"`` -> ``"3"``)."""
    return label[1:] if label[:1] == "v" and label[1:].isdigit() else label


def write_stdout(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


class _Totals:
    """What one line reports: counts, in-flight, duration sum and per-bucket counts."""

    def __init__(self) -> None:
        self.requests = self.server_errors = self.client_errors = 0
        self.in_flight = self.seconds = 0.0
        self.buckets: dict[float, int] = {}  # upper bound -> requests in that bucket

    def add(self, other: _Totals) -> None:
        self.requests += other.requests
        self.server_errors += other.server_errors
        self.client_errors += other.client_errors
        self.in_flight += other.in_flight
        self.seconds += other.seconds
        for bound, count in other.buckets.items():
            self.buckets[bound] = self.buckets.get(bound, 0) + count

    def values(self) -> dict[str, tuple[str, Any]]:
        """``{metric name: (unit, EMF value)}``."""
        out: dict[str, tuple[str, Any]] = {
            "Requests": ("Count", self.requests),
            "ServerErrors": ("Count", self.server_errors),
            "ClientErrors": ("Count", self.client_errors),
            "InFlight": ("Count", self.in_flight),
        }
        values: list[float] = []
        counts: list[int] = []
        lower = 0.0
        for bound in sorted(self.buckets):
            if self.buckets[bound] > 0:
                values.append(lower if bound == float("inf") else (lower + bound) / 2)
                counts.append(self.buckets[bound])
            lower = bound
        if counts:
            duration = {"Values": values, "Counts": counts, "Min": values[0], "Max": values[-1]}
            duration |= {"Count": sum(counts), "Sum": self.seconds}
            out["RequestDuration"] = ("Seconds", duration)
        return out


class EmfPublisher:
    """Writes the instance's metrics as EMF lines every ``interval`` seconds and at ``stop()``.

    ``clock`` (seconds since the epoch) and ``write`` (one call per flush, all lines) are
    injectable for tests.
    """

    def __init__(
        self,
        metrics: InstanceMetrics,
        *,
        service: str,
        version: str,
        environment: str,
        interval: float = 60.0,
        clock: Callable[[], float] = time.time,
        write: Callable[[bytes], None] = write_stdout,
    ) -> None:
        self.metrics = metrics
        self.dimensions = {
            "Environment": environment,
            "Service": service,
            "Version": version_dimension(version),
        }
        self.interval = interval
        self.clock = clock
        self.write = write
        self._last: dict[_Key, float] = {}
        self._cold_start_sent = False
        self._task: asyncio.Task[None] | None = None

    def _read(self) -> dict[_Key, float]:
        """The counters' cumulative values, now."""
        now: dict[_Key, float] = {}
        for family in (*self.metrics.requests.collect(), *self.metrics.latency.collect()):
            for s in family.samples:
                if s.name.endswith("_total"):
                    now["status", s.labels["endpoint"], s.labels["status"]] = s.value
                elif s.name.endswith("_bucket"):
                    now["le", s.labels["endpoint"], s.labels["le"]] = s.value
                elif s.name.endswith("_sum"):
                    now["sum", s.labels["endpoint"], ""] = s.value
        return now

    def _totals(self) -> dict[str, _Totals]:
        """Per endpoint: what changed since the last flush, and the in-flight gauge."""
        now = self._read()
        totals = {name: _Totals() for name in self.metrics.endpoints}
        cumulative: dict[str, list[tuple[float, int]]] = {name: [] for name in totals}
        for (kind, endpoint, label), value in now.items():
            t = totals.setdefault(endpoint, _Totals())
            delta = value - self._last.get((kind, endpoint, label), 0.0)
            if kind == "status":
                t.requests += round(delta)
                t.server_errors += round(delta) if label.startswith("5") else 0
                t.client_errors += round(delta) if label.startswith("4") else 0
            elif kind == "le":
                cumulative.setdefault(endpoint, []).append((float(label), round(delta)))
            else:
                t.seconds = delta
        for endpoint, bounds in cumulative.items():  # cumulative buckets -> per bucket
            below = 0
            for bound, count in sorted(bounds):
                totals[endpoint].buckets[bound] = count - below
                below = count
        for family in self.metrics.in_flight.collect():
            for s in family.samples:
                totals.setdefault(s.labels["endpoint"], _Totals()).in_flight = s.value
        self._last = now
        return totals

    def lines(self) -> list[bytes]:
        """This flush's EMF lines: one per endpoint, then the service's."""
        timestamp = int(self.clock() * 1000)
        service = _Totals()
        lines: list[bytes] = []
        for endpoint, totals in self._totals().items():
            service.add(totals)
            dimensions = {**self.dimensions, "Endpoint": endpoint}
            lines.append(self._line(timestamp, dimensions, totals.values()))
        values = service.values()
        ready = any(s.value == 1 for f in self.metrics.ready.collect() for s in f.samples)
        if ready and not self._cold_start_sent:
            self._cold_start_sent = True
            values["ColdStarts"] = ("Count", 1)
        lines.append(self._line(timestamp, self.dimensions, values))
        return lines

    def _line(
        self, timestamp: int, dimensions: dict[str, str], values: dict[str, tuple[str, Any]]
    ) -> bytes:
        assert len(values) <= MAX_METRICS
        assert len(dimensions) <= MAX_DIMENSIONS
        directive = {
            "Namespace": NAMESPACE,
            "Dimensions": [list(dimensions)],
            "Metrics": [{"Name": name, "Unit": unit} for name, (unit, _) in values.items()],
        }
        document: dict[str, Any] = {
            "_aws": {"Timestamp": timestamp, "CloudWatchMetrics": [directive]},
            **dimensions,
            **{name: value for name, (_, value) in values.items()},
        }
        return to_json(document) + b"\n"

    def flush(self) -> None:
        self.write(b"".join(self.lines()))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.flush()
            except Exception:  # a failed flush must not stop the next ones
                log.exception("EMF flush failed")

    def start(self) -> None:
        """Flush every ``interval`` seconds on the running loop, until :meth:`stop`."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="flowhost-emf")

    async def stop(self) -> None:
        """Stop the periodic flushes and flush once more."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.flush()
