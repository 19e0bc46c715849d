"""Health checks of running instances: a wedged instance is taken out and replaced.

An instance that exits is noticed at once (its launcher reports the exit); one that
stays up but stops answering ``/healthz`` is caught here, after ``failures`` misses
in a row, then drained, stopped and left for the scaler to replace.

:func:`platform_health` is the platform's own health, as ``/api/healthz`` and
``flowhost status`` report it: what is degraded and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from flowhost.errors import FlowhostError
from flowhost.lambdas.local.compute import LocalCompute
from flowhost.lambdas.local.pool import Instance, Pool
from flowhost.lambdas.local.scaler import Scaler
from flowhost.lambdas.store import StateStore

__all__ = ["HealthChecker", "platform_health"]

log = logging.getLogger("flowhost.health")


class HealthChecker:
    def __init__(
        self,
        compute: LocalCompute,
        pools: Callable[[], Iterable[Pool]],
        *,
        interval: float = 5.0,
        timeout: float = 2.0,
        failures: int = 3,
    ) -> None:
        self.compute = compute
        self.pools = pools
        self.interval = interval
        self.timeout = timeout
        self.failures = failures
        self._misses: dict[Instance, int] = {}
        self._replacing: set[Instance] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._client = httpx.AsyncClient(timeout=timeout, trust_env=False)

    async def _probe(self, inst: Instance) -> bool:
        try:
            response = await self._client.get(f"http://127.0.0.1:{inst.port}/healthz")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def check(self, pool: Pool) -> None:
        instances = [i for i in pool.live if i not in self._replacing]
        results = await asyncio.gather(*(self._probe(i) for i in instances))
        for inst, healthy in zip(instances, results, strict=True):
            if healthy:
                self._misses.pop(inst, None)
                continue
            misses = self._misses[inst] = self._misses.get(inst, 0) + 1
            if misses >= self.failures:
                log.warning(
                    "instance failed its health checks; replacing it",
                    extra={"fields": {"version": pool.key, "port": inst.port, "misses": misses}},
                )
                self._replacing.add(inst)
                task = asyncio.create_task(self._replace(pool, inst))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _replace(self, pool: Pool, inst: Instance) -> None:
        try:
            await self.compute.stop(pool, inst, grace=2.0)  # it answers nothing: no long wait
        finally:
            self._replacing.discard(inst)
            self._misses.pop(inst, None)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await asyncio.gather(*(self.check(p) for p in list(self.pools())))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()


def platform_health(compute: LocalCompute, scaler: Scaler, store: StateStore) -> dict[str, Any]:
    """``{"status": "ok"}``, or ``{"status": "degraded", "degraded": [why, ...]}`` while the
    state database is unreachable, a launcher restarts, an instance is being replaced, or a
    version's instances fail to start.
    """
    degraded: list[str] = []
    try:
        store.ping()
    except FlowhostError as error:  # down, or its disk full: say so, do not fail healthz
        degraded.append(f"state: {error.message}")
    degraded += [launcher.degraded for launcher in compute.launchers if launcher.degraded]
    degraded += [why for _, why in sorted(scaler.restarting.items(), key=lambda kv: kv[0].key)]
    degraded += [
        why.splitlines()[0][:300]
        for _, why in sorted(scaler.last_error.items(), key=lambda kv: kv[0].key)
    ]
    return {"status": "degraded", "degraded": degraded} if degraded else {"status": "ok"}
