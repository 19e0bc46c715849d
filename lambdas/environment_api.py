"""``/api/environments``: register named environments and read their revisions.

``PUT /api/environments/{name}`` registers requirements under a name: 201 with the new
revision, or 200 with the latest when it already has those requirements. The document
states the requirements' form as a pattern (:data:`REQUIREMENTS_PATTERN`); a line outside
it is answered 422 naming the line. Reads are for readers, the registration for deployers
(``flowhost.infra.api_grants``). Errors are the platform's one error model, raised as
flowhost errors and answered by the control plane's handlers (:mod:`flowhost.lambdas.api`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from flowhost.lambdas.identity import Actor
from flowhost.lambdas.store.environments import (
    ENVIRONMENT_NAME,
    MAX_REQUIREMENTS,
    REQUIREMENTS_PATTERN,
    EnvironmentRegistry,
    EnvironmentRevision,
)
from flowhost.services.openapi import error_response

__all__ = [
    "EnvironmentDetail",
    "EnvironmentName",
    "EnvironmentRegistration",
    "RevisionNumber",
    "environments_router",
]

EnvironmentName = Annotated[
    str,
    Path(
        pattern=ENVIRONMENT_NAME.pattern, max_length=63,
        description="the environment's name: a DNS-safe slug, e.g. sentiment-train",
    ),
]  # fmt: skip
RevisionNumber = Annotated[
    int, Path(ge=1, le=2**31 - 1, description="the revision's number (the first is 1)")
]

_ERRORS: dict[int, str] = {
    400: "The body is not JSON (code: malformed_json)",
    401: "No verified identity on AWS (code: unauthenticated)",
    404: "No environment of that name, or no such revision (code: environment_not_found)",
    409: "Registrations of the name raced and this one lost twice; nothing was written, "
    "register again (code: environment_conflict)",
    422: "A parameter or the body is invalid (codes: validation_error, invalid_environment); "
    "the message names the field or the requirements line",
    503: "The state store is unavailable (code: state_unavailable); retry after Retry-After",
}


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: error_response(_ERRORS[status]) for status in statuses}


class EnvironmentRegistration(BaseModel):
    """What to register: pip requirements and a note of where they came from."""

    model_config = ConfigDict(extra="forbid")

    requirements: str = Field(
        max_length=MAX_REQUIREMENTS,
        description="pip requirements, one per line; comments and blank lines are dropped. "
        "No options (-r, -e, --index-url): the platform's index is set in its stack.",
        json_schema_extra={"pattern": REQUIREMENTS_PATTERN},
    )
    source: str = Field(
        default="", max_length=1000,
        description="where they came from, e.g. 'requirements.txt' or 'TrainFlow/12/train'",
    )  # fmt: skip


class RegisteredRevision(EnvironmentRevision):
    """The revision a registration is, and whether it was created by it."""

    created: bool = Field(description="false: the latest revision already had these")


class EnvironmentDetail(BaseModel):
    """An environment: its latest revision and every revision, oldest first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latest: EnvironmentRevision
    revisions: list[EnvironmentRevision]


def environments_router(
    registry: EnvironmentRegistry | Callable[[], EnvironmentRegistry],
) -> APIRouter:
    """The routes over ``registry`` (or a function making it, called on first use: the
    platform's database may not be open when the app is made)."""
    router = APIRouter(tags=["environments"])

    @cache
    def environments() -> EnvironmentRegistry:
        return registry if isinstance(registry, EnvironmentRegistry) else registry()

    @router.put(
        "/api/environments/{name}", status_code=201, response_model=RegisteredRevision,
        response_description="A new revision, with these requirements",
        responses={200: {"description": "The latest revision already has these requirements",
                         "model": RegisteredRevision},
                   **_responses(400, 401, 409, 422, 503)},
    )  # fmt: skip
    def register_environment(  # pyright: ignore[reportUnusedFunction]
        name: EnvironmentName, body: EnvironmentRegistration, actor: Actor
    ) -> JSONResponse:
        """Register requirements as the next revision of ``name`` (201), or answer the
        latest revision if it has the same requirements (200). A revision never changes."""
        revision, created = environments().put(name, body.requirements, body.source, actor)
        answer = RegisteredRevision(**revision.model_dump(), created=created)
        return JSONResponse(answer.model_dump(mode="json"), status_code=201 if created else 200)

    @router.get(
        "/api/environments",
        response_model=list[EnvironmentRevision],
        responses=_responses(503),
        response_description="The latest revision of each environment, by name",
    )
    def list_environments() -> list[EnvironmentRevision]:  # pyright: ignore[reportUnusedFunction]
        """The latest revision of every registered environment, by name."""
        return environments().names()

    @router.get(
        "/api/environments/{name}", response_model=EnvironmentDetail,
        responses=_responses(404, 422, 503), response_description="The environment",
    )  # fmt: skip
    def show_environment(name: EnvironmentName) -> EnvironmentDetail:  # pyright: ignore[reportUnusedFunction]
        """The environment's latest revision and all its revisions, oldest first."""
        revisions = environments().revisions(name)
        return EnvironmentDetail(latest=revisions[-1], revisions=revisions)

    @router.get(
        "/api/environments/{name}/revisions/{revision}", response_model=EnvironmentRevision,
        responses=_responses(404, 422, 503), response_description="The revision",
    )  # fmt: skip
    def show_revision(name: EnvironmentName, revision: RevisionNumber) -> EnvironmentRevision:  # pyright: ignore[reportUnusedFunction]
        """One revision of the environment."""
        return environments().get(name, revision)

    return router
