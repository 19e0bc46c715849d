"""``/api/environments/{name}/revisions/{revision}/build``: build a named environment.

A deploy builds the environment its version needs; this builds one ahead of any deploy,
for the platform's target, and answers its digest: what a GPU service's stack passes to
``ServiceSpec(environment_digest=...)`` (its pods fetch the environment as ECS tasks do),
or a warm-up before deploys. ``POST`` starts the build unless the digest is built or
building (202); ``GET`` reports it without starting anything. Deployers build, readers
read (``flowhost.infra.api_grants``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from flowhost.errors import FlowhostError
from flowhost.lambdas.deployments import Deployments
from flowhost.lambdas.environment_api import EnvironmentName, RevisionNumber
from flowhost.lambdas.environments.builds import BuildProgress, EnvironmentBuilds
from flowhost.lambdas.store.environments import EnvironmentNotFound
from flowhost.services.config import Environment
from flowhost.services.openapi import error_response

__all__ = ["EnvironmentBuild", "environment_builds_router"]

_ERRORS: dict[int, str] = {
    401: "No verified identity on AWS (code: unauthenticated)",
    404: "No such environment or revision, or (GET) no build asked for yet "
    "(code: environment_not_found)",
    409: "This platform builds no environments (code: environments_unavailable)",
    422: "A parameter is invalid, or the revision's requirements are not accepted any more "
    "(codes: validation_error, invalid_environment)",
    503: "The state store is unavailable (code: state_unavailable); retry after Retry-After",
}


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: error_response(_ERRORS[status]) for status in statuses}


class EnvironmentsUnavailable(FlowhostError):
    code = "environments_unavailable"
    status = 409


class EnvironmentBuild(BaseModel):
    """One environment's build for the platform's target."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    environment: str = Field(description="name@revision")
    digest: str = Field(description="what ServiceSpec(environment_digest=...) takes")
    target: str = Field(description="the Python and platform it is built for")
    state: Literal["building", "built", "failed"]
    lines: list[str] = Field(description="the build's lines so far (the last 200)")
    error: str | None = None
    summary: str | None = Field(default=None, description="what was built, once built")


def _answer(ref: str, digest: str, target: str, progress: BuildProgress) -> EnvironmentBuild:
    return EnvironmentBuild(
        environment=ref, digest=digest, target=target, state=progress.state,
        lines=progress.lines, error=progress.error,
        summary=progress.manifest.summary() if progress.manifest else None,
    )  # fmt: skip


def environment_builds_router(deployments: Deployments) -> APIRouter:
    router = APIRouter(tags=["environments"])

    def builds() -> EnvironmentBuilds:
        if deployments.environments is None:
            raise EnvironmentsUnavailable(
                "this platform builds no environments. Deploy to a platform whose stack "
                "defines environment builds."
            )
        return deployments.environments

    def digest_of(name: str, revision: int, *, store: bool) -> tuple[str, str, str]:
        ref = f"{name}@{revision}"
        found = builds().request_for(Environment(name=ref), None, "environment", store=store)
        return ref, found.digest, found.target.describe()

    path = "/api/environments/{name}/revisions/{revision}/build"

    @router.post(
        path, status_code=202, response_model=EnvironmentBuild,
        responses=_responses(401, 404, 409, 422, 503),
        response_description="The build, started unless built or building already",
    )  # fmt: skip
    def build_environment(name: EnvironmentName, revision: RevisionNumber) -> EnvironmentBuild:  # pyright: ignore[reportUnusedFunction]
        """Build the revision for the platform's target (once per digest), and answer
        its digest and how the build goes."""
        ref, digest, target = digest_of(name, revision, store=True)
        progress = builds().ensure(digest, since=datetime.now(UTC))
        return _answer(ref, digest, target, progress)

    @router.get(
        path, response_model=EnvironmentBuild, responses=_responses(401, 404, 409, 422, 503),
        response_description="How the build goes",
    )  # fmt: skip
    def show_environment_build(name: EnvironmentName, revision: RevisionNumber) -> EnvironmentBuild:  # pyright: ignore[reportUnusedFunction]
        """The revision's build for the platform's target; starts nothing."""
        ref, digest, target = digest_of(name, revision, store=False)
        progress = builds().view(digest)
        if progress is None:
            raise EnvironmentNotFound(
                f"environment {ref}: not built and not building for {target}. Build it "
                f"with 'flowhost env build {ref}'."
            )
        return _answer(ref, digest, target, progress)

    return router
