"""``flowhost up``: the whole platform in one process on one machine.

Control-plane API (``/api``), catalog Swagger (``/docs``), router and activator
(everything else), and the scaler, served by one uvicorn on ``127.0.0.1:8080``; state
under ``.flowhost/``. Instances are forked processes on loopback ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import uvicorn

from flowhost.errors import FlowhostError
from flowhost.lambdas.api import create_api, create_catalog
from flowhost.lambdas.async_requests import (
    AsyncRequests,
    AsyncSettings,
    LocalQueues,
    create_async_app,
)
from flowhost.lambdas.deployments import DEPLOY_TIMEOUT, Deployments
from flowhost.lambdas.environments.builds import EnvironmentBuilds
from flowhost.lambdas.environments.request import TargetPlatform
from flowhost.lambdas.gateway import Gateway
from flowhost.lambdas.local.access import AccessGate, serve_check
from flowhost.lambdas.local.asyncjobs import LocalJobsConfig
from flowhost.lambdas.local.builds import LocalBuildRunner
from flowhost.lambdas.local.compute import LocalCompute
from flowhost.lambdas.local.fleet import LocalFleet
from flowhost.lambdas.local.health import HealthChecker, platform_health
from flowhost.lambdas.local.launcher import Launcher
from flowhost.lambdas.local.pool import Pool
from flowhost.lambdas.local.router import Router
from flowhost.lambdas.local.routes import RouteTable
from flowhost.lambdas.local.scaler import Scaler
from flowhost.lambdas.objectstore import LocalObjectStore
from flowhost.lambdas.store import StateStore, VersionRecord
from flowhost.lambdas.store.environments import EnvironmentRegistry
from flowhost.lambdas.store.requests import RequestStore
from flowhost.services.runtime.limits import raise_open_files_limit
from flowhost.services.runtime.lingering import LingeringClose
from flowhost.services.runtime.logs import configure_logging

if TYPE_CHECKING:
    from flowhost.services.runtime.tracing import Tracing

__all__ = ["LocalPlatform", "PlatformSettings"]

log = logging.getLogger("flowhost.platform")


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
    asynchronous: AsyncSettings = field(default_factory=AsyncSettings)
    callback_secret: str | None = None  # default: $FLOWHOST_CALLBACK_SECRET, else one kept in home
    otlp_endpoint: str | None = None  # OTLP/HTTP collector for the router's and instances' traces
    deploy_timeout: float = DEPLOY_TIMEOUT  # seconds a new version has to start, or it fails
    deploy_tick: float = 0.1  # how often unfinished deploys are advanced
    deploy_idle_tick: float = 1.0  # how often the state DB is looked at when none are
    auth: Literal["none", "token"] = "none"  # token: bearer tokens by role (local.access)
    open_services: bool = False  # with token auth: service routes need no token
    package_index: str | None = None  # environments' index URL (default: uv's configuration)


def callback_secret(home: Path, given: str | None) -> bytes:
    """The key callbacks are signed with: given, from the environment, or generated once
    and kept in ``home/callback-secret`` (mode 0600) so it survives restarts."""
    value = given or os.environ.get("FLOWHOST_CALLBACK_SECRET")
    if value:
        return value.encode()
    path = home / "callback-secret"
    if not path.is_file():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_text().strip().encode()


class LocalPlatform:
    """Assembles the ports and parts; ``await start()`` then serve ``self`` as ASGI."""

    def __init__(self, settings: PlatformSettings) -> None:
        self.settings = settings
        home = settings.home.resolve()
        self.store_url = settings.store_url or f"sqlite:///{home / 'state.db'}"
        self.store = StateStore.open(self.store_url)
        self.objects = LocalObjectStore(home / "objects")
        self.launcher = Launcher()
        self.routes = RouteTable()
        self.builds = LocalBuildRunner(home / "objects", home / "logs" / "environments")
        self.environments = EnvironmentBuilds(
            self.store.engine, self.objects, self.builds,
            TargetPlatform.here(settings.package_index),
            registry=EnvironmentRegistry(self.store.engine),
        )  # fmt: skip
        self.compute = LocalCompute(
            home, self.objects, self.launcher, ready_timeout=settings.ready_timeout,
            jobs=self._jobs_config, otlp_endpoint=settings.otlp_endpoint,
        )  # fmt: skip
        self.scaler = Scaler(
            self.compute, self.routes.all_pools, tick=settings.scaler_tick,
            window=settings.scale_down_window,
        )  # fmt: skip
        self.compute.on_exit = self.scaler.instance_exited  # a dead instance is replaced
        self.health = HealthChecker(
            self.compute, self.routes.all_pools, interval=settings.health_interval
        )
        self._deploys_changed = asyncio.Event()
        self.fleet = LocalFleet(
            self.compute, self.routes, self.scaler, on_retire=self._retired,
            on_change=self._deploys_changed.set,
        )  # fmt: skip
        self.deployments = Deployments(
            self.store, self.objects, self.fleet, deploy_timeout=settings.deploy_timeout,
            on_recorded=lambda _version: self._deploys_changed.set(),
            environments=self.environments,
        )  # fmt: skip
        a = settings.asynchronous
        self.queues = LocalQueues(home / "queues.db", max_receive_count=a.max_attempts)
        self.async_requests = AsyncRequests(
            RequestStore(self.store.engine), self.objects, self.queues,
            lambda service, ref: self.routes.lookup(service, ref).version,
            settings=a, secret=callback_secret(home, settings.callback_secret),
            public_url=f"http://{settings.host}:{settings.port}",
            versions=lambda: [(p.service, p.number) for p in self.routes.all_pools()],
            on_submit=self._submitted,
        )  # fmt: skip
        self.async_app = create_async_app(self.async_requests)
        self.tracing: Tracing | None = None
        if settings.otlp_endpoint is not None:  # imported only when tracing is on
            from flowhost.services.runtime.tracing import Tracing

            self.tracing = Tracing("flowhost-router", endpoint=settings.otlp_endpoint)
        self.router = Router(
            self.routes, self.scaler, cold_start_timeout=settings.cold_start_timeout,
            tracing=self.tracing,
        )  # fmt: skip
        self.api = create_api(
            self.deployments, instances=self.instances, logs=self.logs, health=self.degraded
        )
        self.catalog = create_catalog(self.deployments)
        self.gateway = Gateway(
            api=self.api, catalog=self.catalog, asynchronous=self.async_app, fallback=self.router
        )
        self._loops: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def _jobs_config(self, version: VersionRecord) -> dict[str, Any]:
        a = self.settings.asynchronous
        return LocalJobsConfig(
            service=version.service, version=version.number,
            queue_path=str(self.queues.path), max_receive_count=a.max_attempts,
            objects_root=str(self.objects.root), store_url=self.store_url,
            result_ttl=a.result_ttl, visibility=a.visibility, retry_backoff=a.retry_backoff,
        ).model_dump()  # fmt: skip

    def _submitted(self, service: str, number: int) -> None:
        """Called from a worker thread when a request is queued: wake the scaler, so a
        version at zero starts now rather than at the next depth check."""
        pool = self.routes.pools.get(service, {}).get(number)
        if pool is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._backlogged, pool)

    def _backlogged(self, pool: Pool) -> None:
        pool.backlog = max(pool.backlog, 1)
        self.scaler.wake()

    async def _retired(self, service: str, number: int) -> None:
        failed = await asyncio.to_thread(self.async_requests.abandon, service, number)
        if failed:
            log.warning(
                "undeployed with queued async requests; they are failed",
                extra={"fields": {"version": f"{service}@v{number}", "failed": failed}},
            )

    def _depths(self, pools: list[Pool]) -> list[int]:
        return [self.queues.queue(p.service, p.number).depth().total for p in pools]

    async def _watch_queues(self) -> None:
        """Keep each pool's backlog (its queue's depth) current for the scaler."""
        while True:
            pools = self.routes.all_pools()
            depths = await asyncio.to_thread(self._depths, pools)
            wake = False
            for pool, depth in zip(pools, depths, strict=True):
                wake |= depth > 0 and not pool.live and not pool.starting
                pool.backlog = depth
            if wake:
                self.scaler.wake()
            await asyncio.sleep(self.settings.scaler_tick)

    async def _advance_deploys(self) -> None:
        """Advance unfinished deploys: often while there are some, rarely when there are
        none (another process may record one), at once when one is recorded or an
        instance started."""
        outage: str | None = None  # the state DB's error while it lasts: said once
        while True:
            self._deploys_changed.clear()
            try:
                unfinished = await self.deployments.advance()
                if outage is not None:
                    log.info("advancing deploys again: the state DB answers")
                    outage = None
            except FlowhostError as exc:  # the state DB is busy or gone: one line, not a
                if outage != exc.code:  # traceback a tick; try again at the idle tick
                    log.warning(
                        "advancing deploys paused", extra={"fields": {"error": exc.message}}
                    )
                outage, unfinished = exc.code, 0
            except Exception:
                log.exception("advancing deploys failed")
                unfinished = 1
            tick = self.settings.deploy_tick if unfinished else self.settings.deploy_idle_tick
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._deploys_changed.wait(), tick)

    def instances(self, service: str) -> dict[str, Any]:
        pools = self.routes.pools.get(service, {})
        return {
            f"v{n}": {
                "ready": len(p.live),
                "starting": p.starting,
                "in_flight": p.in_flight,
                "queued": p.backlog,
                "ports": [i.port for i in p.live],
            }
            for n, p in sorted(pools.items())
        }

    def degraded(self) -> dict[str, Any]:
        """The platform's health: what is degraded (a launcher restarting, an instance
        being replaced), as ``/api/healthz`` reports it."""
        return platform_health(self.compute, self.scaler, self.store)

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
        """Migrate the store (refused if it is ahead of this code), start the launcher,
        restore versions and aliases, and carry on with unfinished deploys."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.store.migrate)
        await asyncio.to_thread(self.deployments.deploys.release_all)  # ours, from a past run
        await self.launcher.start()
        restored = 0
        for version in self.store.all_versions():
            if version.status == "ready":
                self.fleet.adopt(version)
                restored += 1
        for alias in self.store.aliases():
            self.routes.point(alias.service, alias.name, alias.version)
        self._loops = [
            asyncio.create_task(self.scaler.run(), name="flowhost-scaler"),
            asyncio.create_task(self.health.run(), name="flowhost-health"),
            asyncio.create_task(self._watch_queues(), name="flowhost-queues"),
            asyncio.create_task(self.async_requests.run(), name="flowhost-async-sweeper"),
            asyncio.create_task(self._advance_deploys(), name="flowhost-deploys"),
        ]
        log.info("platform started", extra={"fields": {"versions_restored": restored}})

    async def stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        await self.health.close()
        await self.async_requests.close()
        await self.fleet.close()
        await self.scaler.close()
        await self.compute.close()
        for digest in self.builds.close():  # stopped unfinished: the next deploy restarts it
            self.environments.builds.forget(digest)
        self.queues.close()
        self.store.close()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.gateway(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except FlowhostError as exc:  # one line says what is wrong and the fix
                    log.error("platform failed to start: %s", exc.message)
                    await send({"type": "lifespan.startup.failed", "message": exc.message})
                    return
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
    serve_check(settings.host, settings.auth)  # no open API beyond loopback
    raise_open_files_limit()  # idle and slow clients must not use up the descriptors
    platform = LocalPlatform(settings)
    app: Any = platform
    if settings.auth == "token":
        home = settings.home.resolve()
        app = AccessGate(platform, home, open_services=settings.open_services)
        log.info("token auth on: tokens in %s", home / "tokens")
    config = uvicorn.Config(
        LingeringClose(app), host=settings.host, port=settings.port, loop="uvloop",
        http="httptools",
        lifespan="on", access_log=False, log_config=None, log_level=log_level,
        timeout_keep_alive=75,
    )  # fmt: skip
    uvicorn.Server(config).run()
