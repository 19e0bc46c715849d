"""The deployments API (FastAPI): packages, versions, aliases, audits, events, OpenAPI.

Runs inside ``flowhost up`` locally and under Mangum on Lambda.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel

import flowhost
from flowhost.errors import FlowhostError
from flowhost.lambdas.deployments import AuditResult, Deployments, DeployRequest
from flowhost.lambdas.identity import Actor
from flowhost.lambdas.identity import router as identity_router
from flowhost.lambdas.request_detail import request_detail_router
from flowhost.lambdas.store import PRODUCTION, VersionRecord
from flowhost.services.openapi import build_openapi
from flowhost.services.runtime.responses import error_body

__all__ = ["create_api", "create_catalog"]


class PromoteRequest(BaseModel):
    version: int
    allow_breaking: bool = False
    force: bool = False


def _version_json(v: VersionRecord, deployments: Deployments | None = None) -> dict[str, Any]:
    """The version; with ``deployments``, its deploy's progress lines (from the state DB)
    as ``progress`` (texts) and ``progress_at`` (their times)."""
    body = v.model_dump(mode="json")
    body["label"] = v.label
    if deployments is not None:
        lines = deployments.progress(v.service, v.number)
        body["progress"] = [line.message for line in lines]
        body["progress_at"] = [line.at.isoformat() for line in lines]
    return body


def _error(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    return JSONResponse(json.loads(error_body(code, message, None, details)), status_code=status)


def create_api(
    deployments: Deployments,
    *,
    instances: Callable[[str], dict[str, Any]] | None = None,
    logs: Callable[[str, int, int], str] | None = None,
    drift: Callable[[], dict[str, list[str]]] | None = None,
    health: Callable[[], dict[str, Any]] | None = None,
) -> FastAPI:
    """The control-plane API under ``/api``; ``instances(service)`` lists running ones,
    ``logs(service, number, tail)`` reads a version's instance log, ``drift()`` names
    compute with no live version record (``orphaned``) and live versions whose compute
    is gone (``missing``), as ``service@vN``; ``health()`` says what is degraded
    (``{"status": "degraded", "degraded": [...]}``, else ``{"status": "ok"}``)."""
    store = deployments.store
    app = FastAPIOffline(
        title="flowhost control plane",
        version=flowhost.__version__,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
        static_url="/api/static-offline-docs",
    )

    @app.exception_handler(FlowhostError)
    async def _flowhost_error(_: Request, exc: FlowhostError) -> JSONResponse:  # pyright: ignore[reportUnusedFunction]
        response = _error(exc.status, exc.code, exc.message)
        response.headers.update(exc.headers)  # Retry-After of state_unavailable
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:  # pyright: ignore[reportUnusedFunction]
        details = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        fields = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return _error(422, "validation_error", f"invalid request ({fields}).", details)

    app.include_router(identity_router)
    app.include_router(request_detail_router(deployments))  # /api/requests/{id}/detail

    @app.get("/api/healthz")
    def healthz() -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        state = health() if health is not None else {"status": "ok"}
        return {**state, "version": flowhost.__version__}

    @app.put("/api/packages/{digest}", status_code=201)
    async def upload_package(digest: str, request: Request) -> JSONResponse:  # pyright: ignore[reportUnusedFunction]
        created = deployments.upload(digest, await request.body())
        return JSONResponse(
            {"digest": digest, "created": created}, status_code=201 if created else 200
        )

    @app.get("/api/services")
    def list_services() -> list[dict[str, Any]]:  # pyright: ignore[reportUnusedFunction]
        aliases = store.aliases()
        out: list[dict[str, Any]] = []
        for name in store.services():
            versions = store.versions(name)
            out.append(
                {
                    "name": name,
                    "aliases": {a.name: a.version for a in aliases if a.service == name},
                    "versions": [
                        {"number": v.number, "status": v.status, "run": v.artifact_run}
                        for v in versions
                    ],
                    "instances": instances(name) if instances else {},
                }
            )
        return out

    @app.get("/api/services/{service}")
    def get_service(service: str) -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        versions = store.versions(service)
        found = drift() if drift else {}
        return {
            "name": service,
            "aliases": {a.name: a.version for a in store.aliases(service)},
            "versions": [_version_json(v) for v in versions],
            "instances": instances(service) if instances else {},
            "drift": {k: [v for v in vs if v.startswith(f"{service}@")] for k, vs in found.items()},
        }

    @app.get("/api/drift")
    def platform_drift() -> dict[str, list[str]]:  # pyright: ignore[reportUnusedFunction]
        return drift() if drift else {"orphaned": [], "missing": []}

    @app.post("/api/services/{service}/versions", status_code=202)
    async def deploy(service: str, req: DeployRequest, actor: Actor) -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        if req.definition.name != service:
            raise FlowhostError(
                f"the URL names service {service!r} but the definition is {req.definition.name!r}."
            )
        version = await deployments.start_deploy(req, actor)
        return _version_json(version, deployments)

    @app.get("/api/services/{service}/versions/{number}")
    def get_version(service: str, number: int) -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        return _version_json(store.version(service, number), deployments)

    @app.delete("/api/services/{service}/versions/{number}")
    async def undeploy(service: str, number: int, actor: Actor) -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        return _version_json(await deployments.undeploy(service, number, actor=actor))

    @app.get("/api/services/{service}/versions/{number}/logs")
    def version_logs(  # pyright: ignore[reportUnusedFunction]
        service: str, number: int, tail: Annotated[int, Query(ge=1, le=10000)] = 100
    ) -> dict[str, Any]:
        store.version(service, number)  # 404 naming the versions that exist
        return {"log": logs(service, number, tail) if logs else ""}

    @app.get("/api/services/{service}/versions/{number}/openapi.json")
    def version_openapi(service: str, number: int) -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        v = store.version(service, number)
        return build_openapi(
            [(f"/{service}@v{number}", v.definition)], title=f"{service} v{number}",
            version=f"v{number}", description=v.definition.description,
        )  # fmt: skip

    @app.post("/api/services/{service}/versions/{number}/audits")
    def record_audits(  # pyright: ignore[reportUnusedFunction]
        service: str, number: int, results: list[AuditResult], actor: Actor
    ) -> dict[str, Any]:
        deployments.record_audits(service, number, results, actor)
        return {"passed": all(r.passed for r in results)}

    @app.post("/api/services/{service}/aliases/{alias}")
    def promote(service: str, alias: str, req: PromoteRequest, actor: Actor) -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        previous = deployments.promote(
            service, req.version, alias=alias, allow_breaking=req.allow_breaking,
            force=req.force, actor=actor,
        )  # fmt: skip
        return {"service": service, "alias": alias, "version": req.version, "previous": previous}

    @app.post("/api/services/{service}/aliases/{alias}/rollback")
    def rollback(service: str, actor: Actor, alias: str = PRODUCTION) -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        target = deployments.rollback(service, alias=alias, actor=actor)
        return {"service": service, "alias": alias, "version": target}

    @app.get("/api/services/{service}/events")
    def events(
        service: str, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[dict[str, Any]]:  # pyright: ignore[reportUnusedFunction]
        return [e.model_dump(mode="json") for e in store.events(service, limit)]

    return app


def create_catalog(deployments: Deployments) -> FastAPI:
    """``/docs`` and ``/openapi.json``: every service's production endpoints, one page."""
    store = deployments.store
    app = FastAPIOffline(
        title="flowhost services", version=flowhost.__version__, redoc_url=None,
    )  # fmt: skip

    def combined() -> dict[str, Any]:
        services = [
            (f"/{a.service}", store.version(a.service, a.version).definition)
            for a in store.aliases()
            if a.name == PRODUCTION
        ]
        return build_openapi(
            services, title="flowhost services", version=flowhost.__version__,
            description="Production endpoints of every service on this platform, and their "
            "asynchronous variants.",
            asynchronous=True,
        )  # fmt: skip

    app.openapi = combined

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> Response:  # pyright: ignore[reportUnusedFunction]
        return JSONResponse(combined())

    return app
