"""The local Fleet: pools of forked instances behind the in-process route table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from flowhost.lambdas.local.compute import LocalCompute
from flowhost.lambdas.local.pool import Pool
from flowhost.lambdas.local.routes import RouteTable
from flowhost.lambdas.local.scaler import Scaler
from flowhost.lambdas.store import VersionRecord

__all__ = ["LocalFleet"]


class LocalFleet:
    def __init__(
        self,
        compute: LocalCompute,
        routes: RouteTable,
        scaler: Scaler,
        on_retire: Callable[[str, int], Awaitable[None]] | None = None,
    ) -> None:
        self.compute = compute
        self.routes = routes
        self.scaler = scaler
        self.on_retire = on_retire

    def code_dir(self, digest: str) -> Path:
        return self.compute.code_dir(digest)

    def adopt(self, version: VersionRecord) -> Pool:
        """Make a ready version routable; the scaler brings it to ``min_instances``."""
        pool = Pool(version)
        self.routes.add(pool)
        return pool

    async def launch(self, version: VersionRecord) -> None:
        """Start the first instance of a new version (proves it starts), then adopt it."""
        pool = Pool(version)
        pool.starting += 1
        try:
            await self.compute.start(pool)
        finally:
            pool.starting -= 1
        self.routes.add(pool)

    def route(self, service: str, alias: str, number: int) -> None:
        self.routes.point(service, alias, number)

    async def retire(self, service: str, number: int) -> None:
        pool = self.routes.drop(service, number)
        if pool is None:
            return
        pool.retired = True
        for inst in list(pool.instances):
            await self.compute.stop(pool, inst)
        self.scaler.forget(pool)
        if self.on_retire is not None:
            await self.on_retire(service, number)
