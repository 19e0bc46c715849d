"""The local scaler: keeps each version between min and max instances, follows load,
scales idle versions to zero, and starts a version at zero when a request is held.

It is also what restarts instances: one that dies is replaced as the version's load asks
for it, and starts that fail or die again soon are retried with bounded exponential
backoff per version (:class:`~flowhost.lambdas.local.backoff.Backoff`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from flowhost.errors import DeployError
from flowhost.lambdas.local.backoff import Backoff
from flowhost.lambdas.local.compute import LocalCompute
from flowhost.lambdas.local.launcher import InstanceLost
from flowhost.lambdas.local.pool import Instance, Pool
from flowhost.lambdas.scaling import Load, desired_instances

__all__ = ["Scaler"]

log = logging.getLogger("flowhost.scaler")


class Scaler:
    def __init__(
        self,
        compute: LocalCompute,
        pools: Callable[[], Iterable[Pool]],
        *,
        tick: float = 0.5,
        window: float = 30.0,
        restart_backoff: float = 0.5,
        restart_backoff_cap: float = 30.0,
    ) -> None:
        self.compute = compute
        self.pools = pools
        self.tick = tick
        self.window = window
        self.restart_backoff = restart_backoff
        self.restart_backoff_cap = restart_backoff_cap
        self._backoff: dict[Pool, Backoff] = {}
        self._samples: dict[Pool, deque[tuple[float, int]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping: set[Pool] = set()
        self._not_before: dict[Pool, float] = {}
        self.last_error: dict[Pool, str] = {}  # why its last start failed
        self.restarting: dict[Pool, str] = {}  # an instance died; why, until one is back
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Evaluate now (a request is held at zero), not at the next tick."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            for pool in list(self.pools()):
                self.evaluate(pool)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.tick)
            self._wake.clear()

    def load(self, pool: Pool, now: float) -> Load:
        if pool.backlog:  # queued async work counts as traffic: no idle timer meanwhile
            pool.last_request = now
        samples = self._samples.setdefault(pool, deque())
        samples.append((now, pool.in_flight + pool.backlog))
        while samples and samples[0][0] < now - self.window:
            samples.popleft()
        return Load(
            in_flight=pool.in_flight,
            peak_in_flight=max(n for _, n in samples),
            waiting=pool.waiting,
            idle_seconds=time.monotonic() - pool.last_request,
            queued=pool.backlog,
        )

    def evaluate(self, pool: Pool) -> None:
        now = time.monotonic()
        current = len(pool.live) + pool.starting
        load = self.load(pool, now)
        want = 0 if pool.retired else desired_instances(pool.scaling, current, load)
        if want <= current:  # nothing to bring back (it has enough, or needs none)
            self.restarting.pop(pool, None)
        if want > current and now >= self._not_before.get(pool, 0.0):
            for _ in range(want - current):
                self._spawn(self._start(pool))
        elif want < len(pool.live) and pool not in self._stopping and pool.starting == 0:
            # Scale-in protection: an instance running async jobs is not stopped (the jobs
            # would start over elsewhere); the version shrinks as instances go quiet.
            idle = [i for i in pool.live if i.jobs == 0]
            if idle:
                self._spawn(self._stop(pool, min(idle, key=lambda i: i.in_flight)))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(self, pool: Pool) -> None:
        pool.starting += 1
        try:
            await self.compute.start(pool)
            self.last_error.pop(pool, None)
            self.restarting.pop(pool, None)
            self.backoff(pool).started()
        except InstanceLost:  # not the version's fault: try again at once
            why = "an instance was lost with its launcher; restarting"
            self.restarting[pool] = f"{pool.key}: {why}"
            self.wake()
        except DeployError as exc:
            self.last_error[pool] = exc.message
            delay = self.backoff(pool).failed()
            self._not_before[pool] = time.monotonic() + delay
            log.error(
                "instance start failed",
                extra={"fields": {"version": pool.key, "retry_in": delay}},
            )
        finally:
            pool.starting -= 1
            pool.notify()

    async def _stop(self, pool: Pool, victim: Instance) -> None:
        self._stopping.add(pool)
        try:
            await self.compute.stop(pool, victim)
        finally:
            self._stopping.discard(pool)

    def backoff(self, pool: Pool) -> Backoff:
        backoff = self._backoff.get(pool)
        if backoff is None:
            backoff = self._backoff[pool] = Backoff(
                base=self.restart_backoff, cap=self.restart_backoff_cap, stable=30.0
            )
        return backoff

    def instance_exited(self, pool: Pool, inst: Instance, code: int) -> None:
        """An instance died (not stopped by the platform): replace it, after a delay that
        grows while its replacements keep dying soon after they start."""
        backoff = self.backoff(pool)
        if pool not in self.restarting:  # else one more died before any came back: same try
            delay = backoff.failed()
            if backoff.attempt == 1:  # it had stayed up: no crash loop, replace it at once
                delay = 0.0
            self._not_before[pool] = time.monotonic() + delay
        self.restarting[pool] = (
            f"{pool.key}: instance exited with code {code}; restarting (attempt {backoff.attempt})"
        )
        self.wake()

    def forget(self, pool: Pool) -> None:
        self._samples.pop(pool, None)
        self._not_before.pop(pool, None)
        self.last_error.pop(pool, None)
        self.restarting.pop(pool, None)
        self._backoff.pop(pool, None)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
