"""``flowhost up``: the whole platform in one process on one machine.

Control-plane API (``/api``), catalog Swagger (``/docs``), router and activator
(everything else), and the scaler, served by one uvicorn on ``127.0.0.1:8080``; state
under ``.flowhost/``. Instances are forked processes on loopback ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from flowhost.lambdas.api import create_api, create_catalog
from flowhost.lambdas.deployments import Deployments
from flowhost.lambdas.local.compute import LocalCompute
from flowhost.lambdas.local.fleet import LocalFleet
from flowhost.lambdas.local.health import HealthChecker
from flowhost.lambdas.local.launcher import Launcher
from flowhost.lambdas.local.router import Router
from flowhost.lambdas.local.routes import RouteTable
from flowhost.lambdas.local.scaler import Scaler
from flowhost.lambdas.objectstore import LocalObjectStore
from flowhost.lambdas.store import StateStore
from flowhost.services.runtime.logs import configure_logging

__all__ = ["LocalPlatform", "PlatformSettings"]

log = logging.getLogger("flowhost.platform")

_CONTROL_PREFIXES = ("/api/", "/docs", "/openapi.json", "/static-offline-docs")


@dataclass(frozen=True)
class PlatformSettings:
    home: Path = Path(".flowhost")
    host: str = "127.0.0.1"
    port: int = 8080
    store_url: str | None = None  # default: SQLite under home
    scaler_tick: float = 0.5
    scale_down_window: float = 30.0
    cold_start_timeout: float = 60.0
    ready_timeout: float = 120.0
    health_interval: float = 5.0


class LocalPlatform:
    """Assembles the ports and parts; ``await start()`` then serve ``self`` as ASGI."""

    def __init__(self, settings: PlatformSettings) -> None:
        self.settings = settings
        home = settings.home.resolve()
        self.store = StateStore.open(settings.store_url or f"sqlite:///{home / 'state.db'}")
        self.objects = LocalObjectStore(home / "objects")
        self.launcher = Launcher()
        self.routes = RouteTable()
        self.compute = LocalCompute(
            home, self.objects, self.launcher, ready_timeout=settings.ready_timeout
        )
        self.scaler = Scaler(
            self.compute, self.routes.all_pools, tick=settings.scaler_tick,
            window=settings.scale_down_window,
        )  # fmt: skip
        self.health = HealthChecker(
            self.compute, self.routes.all_pools, interval=settings.health_interval
        )
        self.fleet = LocalFleet(self.compute, self.routes, self.scaler)
        self.deployments = Deployments(self.store, self.objects, self.fleet)
        self.router = Router(
            self.routes, self.scaler, cold_start_timeout=settings.cold_start_timeout
        )
        self.api = create_api(self.deployments, instances=self.instances, logs=self.logs)
        self.catalog = create_catalog(self.deployments)
        self._loops: list[asyncio.Task[None]] = []

    def instances(self, service: str) -> dict[str, Any]:
        pools = self.routes.pools.get(service, {})
        return {
            f"v{n}": {
                "ready": len(p.live),
                "starting": p.starting,
                "in_flight": p.in_flight,
                "ports": [i.port for i in p.live],
            }
            for n, p in sorted(pools.items())
        }

    def logs(self, service: str, number: int, tail: int) -> str:
        path = self.compute.home / "logs" / service / f"v{number}.log"
        if not path.is_file():
            return ""
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 256 * tail))  # lines are rarely longer than this
            lines = f.read().decode(errors="replace").splitlines()
        return "\n".join(lines[-tail:])

    async def start(self) -> None:
        """Migrate the store, start the launcher, restore versions and aliases."""
        await asyncio.to_thread(self.store.migrate)
        await self.launcher.start()
        restored = 0
        for version in self.store.all_versions():
            if version.status == "deploying":  # the platform stopped mid-deploy
                self.store.set_status(
                    version.service, version.number, "failed",
                    "the platform stopped while this version was deploying; deploy it again",
                )  # fmt: skip
            elif version.status == "ready":
                self.fleet.adopt(version)
                restored += 1
        for alias in self.store.aliases():
            self.routes.point(alias.service, alias.name, alias.version)
        self._loops = [
            asyncio.create_task(self.scaler.run(), name="flowhost-scaler"),
            asyncio.create_task(self.health.run(), name="flowhost-health"),
        ]
        log.info("platform started", extra={"fields": {"versions_restored": restored}})

    async def stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        await self.health.close()
        await self.deployments.close()
        await self.scaler.close()
        await self.compute.close()
        self.store.close()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith("/api/") or path == "/api":
            await self.api(scope, receive, send)
        elif path.startswith(_CONTROL_PREFIXES) or path in ("/", "/healthz"):
            await self.catalog(scope, receive, send)
        else:
            await self.router(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    log.exception("platform failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def run(settings: PlatformSettings, log_level: str = "info") -> None:
    """Serve the platform until interrupted; stopping it stops every instance."""
    configure_logging(log_level)
    platform = LocalPlatform(settings)
    config = uvicorn.Config(
        platform, host=settings.host, port=settings.port, loop="uvloop", http="httptools",
        lifespan="on", access_log=False, log_config=None, log_level=log_level,
        timeout_keep_alive=75,
    )  # fmt: skip
    uvicorn.Server(config).run()
