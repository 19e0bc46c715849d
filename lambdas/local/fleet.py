"""The local Fleet: pools of forked instances behind the in-process route table.

A deploy's first instance starts in a task of the platform's event loop (``begin``);
``check`` reports on that task. The route table only ever holds pools that started,
and a platform started again knows no task: ``check`` then says ``idle`` and the deploy
begins again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from flowhost.errors import DeployError
from flowhost.lambdas.fleet import Launch
from flowhost.lambdas.local.compute import LocalCompute
from flowhost.lambdas.local.launcher import InstanceLost
from flowhost.lambdas.local.pool import Pool
from flowhost.lambdas.local.routes import RouteTable
from flowhost.lambdas.local.scaler import Scaler
from flowhost.lambdas.store import VersionRecord

__all__ = ["LocalFleet"]

log = logging.getLogger("flowhost.fleet")


class LocalFleet:
    def __init__(
        self,
        compute: LocalCompute,
        routes: RouteTable,
        scaler: Scaler,
        on_retire: Callable[[str, int], Awaitable[None]] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """``on_change`` is called when a first instance started or failed to (to wake
        whatever advances deploys)."""
        self.compute = compute
        self.routes = routes
        self.scaler = scaler
        self.on_retire = on_retire
        self.on_change = on_change
        self._starts: dict[tuple[str, int], asyncio.Task[Pool]] = {}

    def code_dir(self, digest: str) -> Path:
        return self.compute.code_dir(digest)

    def adopt(self, version: VersionRecord) -> Pool:
        """Make a ready version routable; the scaler brings it to ``min_instances``."""
        pool = Pool(version)
        self.routes.add(pool)
        return pool

    def _routed(self, version: VersionRecord) -> Pool | None:
        return self.routes.pools.get(version.service, {}).get(version.number)

    async def begin(self, version: VersionRecord) -> None:
        """Start the first instance of a new version in the background (proves it starts)."""
        key = (version.service, version.number)
        if key in self._starts or self._routed(version) is not None:
            return
        pool = Pool(version)
        pool.starting += 1
        task = asyncio.create_task(self._start(pool), name=f"flowhost-start-{pool.key}")
        self._starts[key] = task
        task.add_done_callback(self._changed)

    def _changed(self, _task: asyncio.Task[Pool]) -> None:
        if self.on_change is not None:
            self.on_change()

    async def _start(self, pool: Pool) -> Pool:
        try:
            for attempt in range(3):  # the launcher died under it: not the version's fault
                try:
                    await self.compute.start(pool)
                    break
                except InstanceLost:
                    if attempt == 2:
                        raise
        finally:
            pool.starting -= 1
        return pool

    async def check(self, version: VersionRecord) -> Launch:
        if self._routed(version) is not None:
            return Launch("running")
        key = (version.service, version.number)
        task = self._starts.get(key)
        if task is None:
            return Launch("idle")
        if not task.done():
            return Launch("starting")
        if task.cancelled():
            del self._starts[key]
            return Launch("idle")
        error = task.exception()
        if error is None:
            return Launch("running")
        del self._starts[key]
        if isinstance(error, DeployError):
            return Launch("failed", error.message)
        log.error("instance start failed", exc_info=error)
        why = f"{type(error).__name__}: {error}"
        return Launch(
            "failed",
            f"{version.service}@{version.label}: the instance failed to start (got {why}). "
            "See the platform's log",
        )

    async def expose(self, version: VersionRecord) -> None:
        """Put the started pool in the route table (``service@vN`` reaches it)."""
        task = self._starts.pop((version.service, version.number), None)
        if task is not None and task.done() and not task.cancelled() and not task.exception():
            self.routes.add(task.result())

    def route(self, service: str, alias: str, number: int) -> None:
        self.routes.point(service, alias, number)

    async def retire(self, service: str, number: int) -> None:
        pool = self.routes.drop(service, number)
        starting = self._starts.pop((service, number), None)
        if pool is None and starting is not None:  # a first instance not yet exposed
            with contextlib.suppress(Exception):
                pool = await starting
        if pool is None:
            return
        pool.retired = True
        for inst in list(pool.instances):
            await self.compute.stop(pool, inst)
        self.scaler.forget(pool)
        if self.on_retire is not None:
            await self.on_retire(service, number)

    async def close(self) -> None:
        """Stop waiting for first instances (the platform is stopping)."""
        for task in self._starts.values():
            task.cancel()
        await asyncio.gather(*self._starts.values(), return_exceptions=True)
        self._starts.clear()
