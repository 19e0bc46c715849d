"""``EnvironmentBuilds``: the control plane's side of environments.

At deploy, :meth:`EnvironmentBuilds.request_for` turns what a service declares (a
requirements file in its package, or a named environment's revision) into an
:class:`EnvironmentRequest` for the platform's target and stores it under its digest.
While the deploy waits, :meth:`EnvironmentBuilds.ensure` is asked again at each step: it
starts the build if none is built or running (one per digest, whichever process asks
first; see :class:`EnvironmentBuildStore`), and answers with the build's lines and how it
ended. Builds run through a :class:`BuildRunner`: a subprocess on one machine, an ECS task
on AWS (``flowhost.lambdas.aws.builds``), both running ``flowhost.lambdas.environments.job``.
"""

from __future__ import annotations

import hashlib
import logging
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

from pydantic import ValidationError
from sqlalchemy import Engine

import flowhost
from flowhost.errors import DeployError, NotFoundError
from flowhost.lambdas.environments.layout import (
    BuildStatus,
    EnvironmentManifest,
    build_key,
    manifest_key,
    request_key,
)
from flowhost.lambdas.environments.request import (
    EnvironmentRequest,
    TargetPlatform,
    runtime_pins,
)
from flowhost.lambdas.objectstore import ObjectStore
from flowhost.lambdas.store.env_builds import BuildRecord, EnvironmentBuildStore
from flowhost.lambdas.store.environments import (
    EnvironmentRegistry,
    environment_ref,
    normalise_requirements,
)
from flowhost.lambdas.store.models import utcnow
from flowhost.services.config import Environment

__all__ = ["BuildProgress", "BuildRunner", "EnvironmentBuilds", "platform_digest"]

log = logging.getLogger("flowhost.environments")

BUILD_TIMEOUT = 1800.0  # seconds a build may run before its deploys fail
_UNSTARTED = 120.0  # seconds a recorded build may go without a runner (its starter died)


def platform_digest() -> str:
    """The digest recorded for versions that declare no environment (the runtime's own)."""
    key = f"python={platform.python_version()};flowhost={flowhost.__version__};"
    return "sha256-" + hashlib.sha256(key.encode()).hexdigest()


class BuildRunner(Protocol):
    """Where builds run."""

    def start(self, digest: str) -> str:
        """Start the build of ``digest``; returns a handle (a pid, a task ARN)."""
        ...

    def stopped(self, handle: str) -> str | None:
        """None while the build runs; once it stopped, how (an exit code, a reason)."""
        ...


@dataclass(frozen=True)
class BuildProgress:
    state: Literal["building", "built", "failed"]
    lines: list[str] = field(default_factory=list[str])
    error: str | None = None
    manifest: EnvironmentManifest | None = None
    started: str | None = None  # the handle of a build this call started


class EnvironmentBuilds:
    def __init__(
        self,
        engine: Engine,
        objects: ObjectStore,
        runner: BuildRunner,
        target: TargetPlatform,
        *,
        registry: EnvironmentRegistry | None = None,
        build_timeout: float = BUILD_TIMEOUT,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.builds = EnvironmentBuildStore(engine)
        self.objects = objects
        self.runner = runner
        self.target = target
        self.registry = registry
        self.build_timeout = build_timeout
        self.clock = clock

    # -- at deploy ---------------------------------------------------------------------

    def request_for(
        self, environment: Environment, code_dir: Path | None, service: str, *, store: bool = True
    ) -> EnvironmentRequest:
        """The request for what ``service`` declares, stored under its digest (not with
        ``store=False``: only the digest is wanted). A requirements file is checked as a
        named environment's requirements are (one rule, the registry's)."""
        if environment.name is not None:
            name, pinned = environment_ref(environment.name)
            if self.registry is None:
                raise DeployError(
                    f"environment: named environments ({name!r}) need the platform's registry."
                )
            revision = self.registry.get(name, pinned)
            requirements = revision.requirements
            source = f"environment {name}@{revision.revision}"
        else:
            assert environment.requirements is not None
            path = None if code_dir is None else code_dir / environment.requirements
            if path is None or not path.is_file():
                raise DeployError(
                    f"environment: requirements file {environment.requirements!r} is not in "
                    "the code package. Put it next to the service file."
                )
            source = f"{environment.requirements} of {service}"
            requirements = normalise_requirements(path.read_text(), origin=source)
        request = EnvironmentRequest(
            requirements=requirements, target=self.target, runtime=runtime_pins(), source=source
        )
        if store:  # what a build of the digest reads
            self.objects.put_if_absent(
                request_key(request.digest), request.model_dump_json().encode()
            )
        return request

    # -- while the deploy waits ----------------------------------------------------------

    def manifest(self, digest: str) -> EnvironmentManifest | None:
        try:
            return EnvironmentManifest.model_validate_json(self.objects.get(manifest_key(digest)))
        except NotFoundError:
            return None

    def status(self, digest: str) -> BuildStatus | None:
        try:
            return BuildStatus.model_validate_json(self.objects.get(build_key(digest)))
        except (NotFoundError, ValidationError):
            return None

    def ensure(self, digest: str, *, since: datetime) -> BuildProgress:
        """How the build of ``digest`` goes, starting it if nothing is built or running (or
        the last build failed before ``since``, when the asking deploy began)."""
        manifest = self.manifest(digest)
        if manifest is not None:
            self._finish(digest, "built")
            status = self.status(digest)
            return BuildProgress("built", status.lines if status else [], manifest=manifest)
        record = self.builds.get(digest)
        now = self.clock()
        if record is None:
            if self.builds.begin(digest, now):
                return self._start(digest)
            record = self.builds.get(digest)
            assert record is not None
        if (
            record.state != "building"
            and record.finished_at is not None
            and (
                record.state == "built" or record.finished_at < since  # built, yet no manifest
            )
        ):
            if self.builds.restart(digest, record, now):
                return self._start(digest, again=True)
            return BuildProgress("building")
        if record.state == "failed":
            status = self.status(digest)
            return BuildProgress("failed", status.lines if status else [], record.error)
        return self._follow(digest, record, now)

    def view(self, digest: str) -> BuildProgress | None:
        """How the build of ``digest`` goes, starting nothing (None: never asked for)."""
        manifest = self.manifest(digest)
        status = self.status(digest)
        lines = status.lines if status else []
        if manifest is not None:
            return BuildProgress("built", lines, manifest=manifest)
        record = self.builds.get(digest)
        if record is None:
            return None
        if record.state != "building":
            return BuildProgress("failed", lines, record.error or "no environment was built")
        return self._follow(digest, record, self.clock())

    def _start(self, digest: str, *, again: bool = False) -> BuildProgress:
        if again:  # the last build's account is not this one's
            self.objects.delete(build_key(digest))
        try:
            handle = self.runner.start(digest)
        except DeployError as exc:  # e.g. RunTask refused: the build fails now, not later
            return self._failed(digest, [], exc.message)
        self.builds.set_runner(digest, handle)
        log.info("environment build started", extra={"fields": {"digest": digest, "by": handle}})
        return BuildProgress("building", started=handle)

    def _follow(self, digest: str, record: BuildRecord, now: datetime) -> BuildProgress:
        status = self.status(digest)
        lines = status.lines if status else []
        if status is not None and status.state == "failed":
            error = status.error or "the build failed"
            self._finish(digest, "failed", error)
            return BuildProgress("failed", lines, error)
        if record.runner is None:
            if now - record.started_at > timedelta(seconds=_UNSTARTED):
                return self._failed(digest, lines, "the build was recorded but never started")
            return BuildProgress("building", lines)
        why = self.runner.stopped(record.runner)
        if why is not None and self.manifest(digest) is None:
            return self._failed(digest, lines, f"the build stopped without an environment ({why})")
        if now - record.started_at > timedelta(seconds=self.build_timeout):
            return self._failed(
                digest, lines, f"the build ran past {self.build_timeout:g}s; it is abandoned"
            )
        return BuildProgress("building", lines)

    def _failed(self, digest: str, lines: list[str], error: str) -> BuildProgress:
        self._finish(digest, "failed", error)
        return BuildProgress("failed", lines, error)

    def _finish(
        self, digest: str, state: Literal["built", "failed"], error: str | None = None
    ) -> None:
        self.builds.finish(digest, state, self.clock(), error)
