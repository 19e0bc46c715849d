"""The serving runtime: a service class becomes one ASGI app.

Endpoint paths (``/{endpoint}``) are dispatched straight to their
:class:`~flowhost.services.runtime.dispatch.EndpointHandler`; everything else
(``/healthz``, ``/readyz``, ``/info``, ``/metrics``, ``/openapi.json``, ``/docs``) is a
small FastAPI app with an offline Swagger UI.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

import flowhost
from flowhost.services.openapi import build_openapi
from flowhost.services.runtime.dispatch import EndpointHandler
from flowhost.services.runtime.emf import EmfPublisher
from flowhost.services.runtime.instance import InstanceState
from flowhost.services.runtime.jobs import JobSource
from flowhost.services.runtime.logs import AccessLog
from flowhost.services.runtime.metrics import InstanceMetrics
from flowhost.services.runtime.responses import error_body
from flowhost.services.runtime.settings import RuntimeSettings
from flowhost.services.runtime.worker import AsyncWorker
from flowhost.services.spec import WebServiceSpec, compiled

if TYPE_CHECKING:
    from flowhost.services.runtime.tracing import Tracing

__all__ = ["ServingApp", "create_app"]

log = logging.getLogger("flowhost.runtime")


class ServingApp:
    """ASGI app of one instance. ``state`` says whether it is ready; ``admin`` is FastAPI."""

    def __init__(
        self,
        cls: type[WebServiceSpec],
        settings: RuntimeSettings,
        jobs: Callable[[], JobSource] | None = None,
        on_jobs: Callable[[int], None] | None = None,
    ) -> None:
        service = compiled(cls)
        self.definition = service.definition
        self.settings = settings
        self.state = InstanceState(cls, self.definition)
        self.metrics = InstanceMetrics(self.definition.name, service.bindings)
        self.executor = ThreadPoolExecutor(
            max_workers=settings.threads, thread_name_prefix="flowhost-endpoint"
        )
        self.access = AccessLog()
        self.tracing = _tracing(self.definition.name, settings)
        base_headers = [
            (b"x-flowhost-service", self.definition.name.encode()),
            (b"x-flowhost-version", settings.version.encode()),
        ]
        self.handlers = {
            f"/{name}": EndpointHandler(
                binding,
                self.state,
                self.metrics.endpoints[name],
                self.executor,
                settings.max_body_bytes,
                base_headers,
                self.access,
                self.tracing,
            )
            for name, binding in service.bindings.items()
        }
        self.worker = (
            AsyncWorker(
                jobs,
                self.handlers,
                concurrency=self.definition.scaling.target_concurrency,
                access=self.access,
                version=settings.version,
                on_running=on_jobs,
                tracing=self.tracing,
            )
            if jobs is not None
            else None
        )
        self.emf = (
            EmfPublisher(
                self.metrics,
                service=self.definition.name,
                version=settings.version,
                environment=settings.environment,
                interval=settings.metrics_interval,
            )
            if settings.metrics == "emf"
            else None
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self.state.on_change(self._on_state_change)
        self.admin = self._admin_app()

    def _on_state_change(self, state: InstanceState) -> None:
        if state.ready and state.instance is not None:
            for handler in self.handlers.values():
                handler.bind(state.instance)
            self.metrics.ready.set(1)
            self.metrics.initialize_seconds.set(state.initialize_seconds or 0.0)
            if self.worker is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(self.worker.start)  # we are on the init thread
        else:
            self.metrics.ready.set(0)

    def pause_jobs(self) -> None:
        """Take no new asynchronous jobs (the instance is being drained)."""
        if self.worker is not None:
            self.worker.pause()

    def local_segments(self) -> frozenset[str]:
        """The first path segments this app serves bare: endpoints, health, docs, ..."""
        paths = [*self.handlers, *(getattr(r, "path", "") for r in self.admin.routes)]
        return frozenset(p.split("/")[1] for p in paths if p.startswith("/"))

    def openapi(self) -> dict[str, Any]:
        return build_openapi(
            [("", self.definition)],
            title=self.definition.name,
            version=self.settings.version,
            description=self.definition.description,
        )

    def info(self) -> dict[str, Any]:
        return {
            "service": self.definition.name,
            "version": self.settings.version,
            "run": self.state.run,
            "status": self.state.status,
            "error": self.state.error,
            "started_at": self.state.started_at,
            "initialize_seconds": self.state.initialize_seconds,
            "flowhost_version": flowhost.__version__,
            "definition": self.definition.model_dump(mode="json"),
        }

    def _admin_app(self) -> FastAPI:
        app = FastAPIOffline(
            title=self.definition.name,
            description=self.definition.description,
            version=self.settings.version,
            redoc_url=None,
        )
        app.openapi = self.openapi  # the document comes from the ServiceDefinition
        state = self.state
        known = ", ".join(["/healthz", "/readyz", "/info", "/metrics", "/docs", *self.handlers])

        @app.exception_handler(StarletteHTTPException)
        async def http_error(request: Request, exc: StarletteHTTPException) -> Response:  # pyright: ignore[reportUnusedFunction]
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
            message = (
                f"no route {request.url.path!r} on this instance. Routes: {known}."
                if exc.status_code == 404
                else f"{request.method} {request.url.path}: {exc.detail}."
            )
            return Response(
                error_body(code, message, request.headers.get("x-request-id")),
                status_code=exc.status_code,
                media_type="application/json",
                headers=getattr(exc, "headers", None),
            )

        @app.get("/healthz", include_in_schema=False)
        def healthz() -> Response:  # pyright: ignore[reportUnusedFunction]
            if state.status == "failed":
                return JSONResponse({"status": "failed", "error": state.error}, status_code=500)
            return JSONResponse({"status": "alive"})

        @app.get("/readyz", include_in_schema=False)
        def readyz() -> Response:  # pyright: ignore[reportUnusedFunction]
            body = {"status": state.status, "error": state.error}
            return JSONResponse(body, status_code=200 if state.ready else 503)

        @app.get("/info", include_in_schema=False)
        def info() -> Response:  # pyright: ignore[reportUnusedFunction]
            return JSONResponse(self.info())

        @app.get("/metrics", include_in_schema=False)
        def metrics() -> Response:  # pyright: ignore[reportUnusedFunction]
            return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

        return app

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._loop = asyncio.get_running_loop()
                self.state.start(self.settings.run)
                if self.emf is not None:
                    self.emf.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.worker is not None:
                    await self.worker.stop()
                if self.emf is not None:
                    await self.emf.stop()  # a last flush, with the drained requests
                self.executor.shutdown(wait=False, cancel_futures=True)
                self.access.flush()
                if self.tracing is not None:
                    await asyncio.to_thread(self.tracing.shutdown)  # export the last spans
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            root: str = scope.get("root_path", "")  # set when served under /{service}
            handler = self.handlers.get(path[len(root) :] if path.startswith(root) else path)
            if handler is not None:
                await handler(scope, receive, send)
                return
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.admin(scope, receive, send)


def _tracing(service: str, settings: RuntimeSettings) -> Tracing | None:
    """The instance's tracer when an OTLP endpoint is set (imported only then)."""
    if settings.otlp_endpoint is None:
        return None
    from flowhost.services.runtime.tracing import Tracing

    return Tracing(
        service,
        endpoint=settings.otlp_endpoint,
        attributes={
            "service.version": settings.version,
            "deployment.environment.name": settings.environment,
            "flowhost.service": service,
            "flowhost.version": settings.version,
        },
        sample_ratio=settings.trace_sample_ratio,
    )


def create_app(
    cls: type[WebServiceSpec],
    settings: RuntimeSettings | None = None,
    jobs: Callable[[], JobSource] | None = None,
    on_jobs: Callable[[int], None] | None = None,
) -> ServingApp:
    """The ASGI app serving ``cls``; ``initialize`` starts with the ASGI lifespan. With
    ``jobs`` (a factory, called once ready), it also runs asynchronous jobs, telling
    ``on_jobs`` how many run whenever that changes (the platform protects busy instances
    from scale-in)."""
    return ServingApp(cls, settings or RuntimeSettings(), jobs, on_jobs)
