"""The deployments API (FastAPI): packages, versions, aliases, audits, events, OpenAPI.

Runs inside ``flowhost up`` locally and under Mangum on Lambda. Its OpenAPI document
states what the code enforces: path parameters carry the patterns the store checks,
every route lists the error statuses it can answer with the one error model
(``components.schemas.Error``, shared with the services' documents), and a 405 carries
``Allow`` with every method the path takes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route

import flowhost
from flowhost.errors import FlowhostError
from flowhost.lambdas.deployments import AuditResult, Deployments, DeployRequest
from flowhost.lambdas.environment_api import environments_router
from flowhost.lambdas.environment_builds_api import environment_builds_router
from flowhost.lambdas.identity import Actor
from flowhost.lambdas.identity import router as identity_router
from flowhost.lambdas.request_detail import request_detail_router
from flowhost.lambdas.store import PRODUCTION, VersionRecord
from flowhost.lambdas.store.environments import EnvironmentRegistry
from flowhost.services.compile import SERVICE_NAME
from flowhost.services.openapi import ERROR_SCHEMA, build_openapi, error_response
from flowhost.services.runtime.responses import error_body

__all__ = ["create_api", "create_catalog"]


class ServiceNameMismatch(FlowhostError):
    """A deploy whose definition names another service than its URL."""

    code = "service_name_mismatch"
    status = 409


ServiceName = Annotated[
    str,
    Path(pattern=SERVICE_NAME.pattern, max_length=63, description="the service's name"),
]
VersionNumber = Annotated[int, Path(ge=1, description="the version's number (v1 is 1)")]
AliasName = Annotated[
    str,
    Path(pattern=r"^[a-z][a-z0-9-]{0,62}$", description="an alias: production, staging, ..."),
]
Digest = Annotated[
    str, Path(pattern=r"^sha256-[0-9a-f]{64}$", description="sha256-<hex> of the archive")
]

# What each error status means, as the routes below document it.
_ERRORS: dict[int, str] = {
    400: "The body is not JSON (code: malformed_json), or the definition cannot be deployed "
    "as given (code: invalid_spec)",
    401: "No verified identity on AWS (code: unauthenticated)",
    404: "No such service, version or alias (code: not_found)",
    409: "The request conflicts with the state of the service (codes: deploy_failed, "
    "service_name_mismatch)",
    422: "A parameter or the body is invalid (code: validation_error); details name the fields",
    424: "An artifact run of the definition cannot be resolved (code: artifact_unavailable)",
    503: "The state store is unavailable (code: state_unavailable); retry after Retry-After",
}
_READ = (404, 422, 503)
_WRITE = (401, 404, 409, 422, 503)
_WRITE_BODY = (400, *_WRITE)  # a write with a JSON body
_MALFORMED = (
    "the request body is not valid JSON. Send a JSON document matching the operation's "
    "schema (see /api/docs)."
)


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: error_response(_ERRORS[status]) for status in statuses}


_DEPLOY_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DeployRequest"}}},
}


def _deploy_request(body: bytes) -> DeployRequest:
    """The deploy's body, validated; a definition that breaks a rule JSON Schema does not
    state (``gpu_type`` needs ``gpu``, an unknown setting) is a 422 like any other field."""
    try:
        return DeployRequest.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    except TypeError as exc:  # SpecError, or a setting's __init__ given an unknown field
        message = str(exc).replace("__init__()", "")
        raise RequestValidationError(
            [{"loc": ("body", "definition"), "msg": message, "type": "invalid_definition"}]
        ) from None


class PromoteRequest(BaseModel):
    version: int = Field(ge=1)
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

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title, version=app.version, routes=app.routes,
                description="The control plane: packages, versions, aliases, audits, events.",
            )  # fmt: skip
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            schemas["Error"] = ERROR_SCHEMA
            deploy = DeployRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(deploy.pop("$defs", {}))
            schemas["DeployRequest"] = deploy
            for name in ("HTTPValidationError", "ValidationError"):  # 422s use Error instead
                doc["components"]["schemas"].pop(name, None)
            for item in doc["paths"].values():  # every error answer is the Error model
                for op in item.values():
                    for status, answer in op["responses"].items():
                        if status.startswith(("4", "5")):
                            said = answer.get("description")
                            answer.update(error_response(_ERRORS.get(int(status), "Error")))
                            if said and said != "Validation Error":  # FastAPI's default 422
                                answer["description"] = said
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:  # pyright: ignore[reportUnusedFunction]
        if exc.status_code == 405:
            methods = sorted(
                {
                    method
                    for route in app.routes
                    if isinstance(route, Route) and route.matches(request.scope)[0] != Match.NONE
                    for method in route.methods or ()
                }
            )
            allow = ", ".join(methods)
            response = _error(
                405, "method_not_allowed",
                f"{request.url.path} takes {allow}, not {request.method}.",
            )  # fmt: skip
            response.headers["allow"] = allow
            return response
        if exc.status_code == 404:
            return _error(
                404, "not_found",
                f"no such path {request.url.path!r}. The API is described at /api/docs.",
            )  # fmt: skip
        if exc.status_code == 400:  # FastAPI: a body it could not decode
            return _error(400, "malformed_json", _MALFORMED)
        return _error(exc.status_code, "http_error", str(exc.detail))

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
        if any(d["type"] == "json_invalid" for d in details):
            return _error(400, "malformed_json", _MALFORMED, details)
        fields = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return _error(422, "validation_error", f"invalid request ({fields}).", details)

    app.include_router(identity_router)
    app.include_router(request_detail_router(deployments))  # /api/requests/{id}/detail
    app.include_router(environments_router(lambda: EnvironmentRegistry(deployments.store.engine)))
    app.include_router(environment_builds_router(deployments))  # .../revisions/{n}/build

    @app.get("/api/healthz")
    def healthz() -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        state = health() if health is not None else {"status": "ok"}
        return {**state, "version": flowhost.__version__}

    @app.put(
        "/api/packages/{digest}", status_code=201,
        responses={200: {"description": "Already uploaded"}, **_responses(401, 409, 422, 503)},
    )  # fmt: skip
    async def upload_package(digest: Digest, request: Request) -> JSONResponse:  # pyright: ignore[reportUnusedFunction]
        created = deployments.upload(digest, await request.body())
        return JSONResponse(
            {"digest": digest, "created": created}, status_code=201 if created else 200
        )

    @app.get("/api/services", responses=_responses(503))
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

    @app.get("/api/services/{service}", responses=_responses(*_READ))
    def get_service(service: ServiceName) -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        versions = store.versions(service)
        found = drift() if drift else {}
        return {
            "name": service,
            "aliases": {a.name: a.version for a in store.aliases(service)},
            "versions": [_version_json(v) for v in versions],
            "instances": instances(service) if instances else {},
            "drift": {k: [v for v in vs if v.startswith(f"{service}@")] for k, vs in found.items()},
        }

    @app.get("/api/drift", responses=_responses(503))
    def platform_drift() -> dict[str, list[str]]:  # pyright: ignore[reportUnusedFunction]
        return drift() if drift else {"orphaned": [], "missing": []}

    @app.post(
        "/api/services/{service}/versions", status_code=202,
        responses=_responses(400, 401, 409, 422, 424, 503),
        openapi_extra={"requestBody": _DEPLOY_BODY},
    )  # fmt: skip
    async def deploy(service: ServiceName, request: Request, actor: Actor) -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        """Record a new version and start its deploy (202; poll the version for progress).

        The definition is checked beyond its JSON Schema too: rules across fields
        (``gpu_type`` needs ``gpu``; ``min_instances`` at most ``max_instances``; an
        environment names requirements or a name, not both) answer 422 naming the field.
        """
        req = _deploy_request(await request.body())
        if req.definition.name != service:
            raise ServiceNameMismatch(
                f"definition.name: the URL deploys service {service!r} but the definition "
                f"names {req.definition.name!r}. POST to /api/services/"
                f"{req.definition.name or '<name>'}/versions, or deploy the definition of "
                f"{service!r}."
            )
        version = await deployments.start_deploy(req, actor)
        return _version_json(version, deployments)

    @app.get("/api/services/{service}/versions/{number}", responses=_responses(*_READ))
    def get_version(service: ServiceName, number: VersionNumber) -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        return _version_json(store.version(service, number), deployments)

    @app.delete("/api/services/{service}/versions/{number}", responses=_responses(*_WRITE))
    async def undeploy(service: ServiceName, number: VersionNumber, actor: Actor) -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        return _version_json(await deployments.undeploy(service, number, actor=actor))

    @app.get("/api/services/{service}/versions/{number}/logs", responses=_responses(*_READ))
    def version_logs(  # pyright: ignore[reportUnusedFunction]
        service: ServiceName,
        number: VersionNumber,
        tail: Annotated[int, Query(ge=1, le=10000)] = 100,
    ) -> dict[str, Any]:
        store.version(service, number)  # 404 naming the versions that exist
        return {"log": logs(service, number, tail) if logs else ""}

    @app.get("/api/services/{service}/versions/{number}/openapi.json", responses=_responses(*_READ))
    def version_openapi(service: ServiceName, number: VersionNumber) -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        v = store.version(service, number)
        return build_openapi(
            [(f"/{service}@v{number}", v.definition)], title=f"{service} v{number}",
            version=f"v{number}", description=v.definition.description,
        )  # fmt: skip

    @app.post(
        "/api/services/{service}/versions/{number}/audits", responses=_responses(*_WRITE_BODY)
    )
    def record_audits(  # pyright: ignore[reportUnusedFunction]
        service: ServiceName, number: VersionNumber, results: list[AuditResult], actor: Actor
    ) -> dict[str, Any]:
        deployments.record_audits(service, number, results, actor)
        return {"passed": all(r.passed for r in results)}

    @app.post("/api/services/{service}/aliases/{alias}", responses=_responses(*_WRITE_BODY))
    def promote(  # pyright: ignore[reportUnusedFunction]
        service: ServiceName, alias: AliasName, req: PromoteRequest, actor: Actor
    ) -> dict[str, Any]:
        previous = deployments.promote(
            service, req.version, alias=alias, allow_breaking=req.allow_breaking,
            force=req.force, actor=actor,
        )  # fmt: skip
        return {"service": service, "alias": alias, "version": req.version, "previous": previous}

    @app.post("/api/services/{service}/aliases/{alias}/rollback", responses=_responses(*_WRITE))
    def rollback(service: ServiceName, alias: AliasName, actor: Actor) -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        target = deployments.rollback(service, alias=alias, actor=actor)
        return {"service": service, "alias": alias, "version": target}

    @app.get("/api/services/{service}/events", responses=_responses(*_READ))
    def events(
        service: ServiceName, limit: Annotated[int, Query(ge=1, le=1000)] = 100
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
