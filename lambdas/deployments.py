"""Deploy, promote, roll back and undeploy versions; the control plane's core.

Generic over the :class:`Fleet` (where instances run and how routes change): the
local platform and the AWS platform each provide one.

A deploy is a row in the state DB, not a task in memory: ``start_deploy`` records the
version and its deploy and returns; ``advance`` (run by the local platform in a loop,
on AWS by the API function invoking itself and by the scheduled tick) moves every
unfinished deploy on, from whichever process runs it. Progress lines are rows too, so
any instance of the API answers a poll with the same progress.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flowhost.errors import AuditFailedError, ContractBrokenError, DeployError, NotFoundError
from flowhost.lambdas.contracts import breaking_changes
from flowhost.lambdas.deploy_steps import DeployStepper
from flowhost.lambdas.environments.builds import EnvironmentBuilds, platform_digest
from flowhost.lambdas.fleet import Fleet
from flowhost.lambdas.objectstore import ObjectStore
from flowhost.lambdas.store import PRODUCTION, StateStore, VersionRecord
from flowhost.lambdas.store.deploys import DeployStore
from flowhost.lambdas.store.models import utcnow
from flowhost.lambdas.store.records import DeployOptions, ProgressLine
from flowhost.services.artifacts import resolve_run
from flowhost.services.config import ArtifactBinding
from flowhost.services.definition import ServiceDefinition
from flowhost.services.packaging import package_digest, package_key

__all__ = ["DEPLOY_TIMEOUT", "AuditResult", "DeployRequest", "Deployments", "Fleet"]

log = logging.getLogger("flowhost.deployments")

DEPLOY_TIMEOUT = 600.0  # seconds a new version has to run its first instance


class DeployRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    definition: ServiceDefinition
    package_digest: str = Field(pattern=r"^sha256-[0-9a-f]{64}$")
    run: str | None = Field(default=None, description="pin this artifact run")
    promote: bool = False
    alias: str = PRODUCTION
    allow_breaking: bool = False


class AuditResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    passed: bool
    error: str | None = None


class Deployments:
    def __init__(
        self,
        store: StateStore,
        objects: ObjectStore,
        fleet: Fleet,
        *,
        deploy_timeout: float = DEPLOY_TIMEOUT,
        lease: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
        on_recorded: Callable[[VersionRecord], None] | None = None,
        environments: EnvironmentBuilds | None = None,
    ) -> None:
        """``deploy_timeout``: seconds from record to a running first instance before the
        deploy fails; ``lease``: seconds one step may take before another process may take
        it over; ``on_recorded``: called once a deploy is recorded (to wake what advances
        deploys); ``environments``: how environments are requested and built (None: this
        platform runs versions in its own environment only)."""
        self.store = store
        self.environments = environments
        self.objects = objects
        self.fleet = fleet
        self.deploys = DeployStore(store.engine)
        self.deploy_timeout = deploy_timeout
        self.clock = clock
        self.on_recorded = on_recorded
        self.stepper = DeployStepper(
            store, self.deploys, fleet, self._promote_step, lease=lease, clock=clock,
            environments=environments, deploy_timeout=deploy_timeout,
        )  # fmt: skip

    def upload(self, digest: str, archive: bytes) -> bool:
        """Store a code package; returns False if it was already there. Checks the digest."""
        try:
            actual = package_digest(archive)
        except (OSError, EOFError, zlib.error):
            raise DeployError(
                "the package is not a gzip archive. Upload what flowhost built."
            ) from None
        if actual != digest:
            raise DeployError(
                f"package digest mismatch: the URL says {digest} but the content is {actual}. "
                "Upload the archive under its own digest."
            )
        key = package_key(digest)
        if self.objects.exists(key):
            return False
        self.objects.put(key, archive)
        return True

    def progress(self, service: str, number: int) -> list[ProgressLine]:
        """The deploy's progress lines, from the state DB."""
        return self.deploys.progress(service, number)

    async def start_deploy(self, req: DeployRequest, actor: str) -> VersionRecord:
        """Record a new version and its deploy, and return; ``advance`` carries it out."""
        if not self.objects.exists(package_key(req.package_digest)):
            raise DeployError(
                f"package {req.package_digest} has not been uploaded. PUT it to "
                f"/api/packages/{req.package_digest} first."
            )
        definition = req.definition
        run: str | None = None
        if definition.artifacts is not None:
            binding = definition.artifacts
            if req.run is not None:  # pinned by the caller: check it exists and did not fail
                binding = ArtifactBinding(flow=binding.flow_name, run=req.run)
            run = await asyncio.to_thread(resolve_run, binding)
        environment = definition.environment
        digest, described = platform_digest(), None
        if environment is not None:
            if self.environments is None:
                raise DeployError(
                    f"environment: this platform builds no environments (the service declares "
                    f"{environment.requirements or environment.name!r}). Remove the service's "
                    "environment, or deploy to a platform that builds them."
                )
            code_dir = (
                None if environment.name is not None
                else await asyncio.to_thread(self.fleet.code_dir, req.package_digest)
            )  # fmt: skip
            request = await asyncio.to_thread(
                self.environments.request_for, environment, code_dir, definition.name
            )
            digest = request.digest
            n = len(request.packages)
            described = (
                f"environment {digest[:19]}... from {request.source}: {n} requirement"
                f"{'s' * (n != 1)} for {request.target.describe()}"
            )
        options = DeployOptions(
            promote=req.promote, alias=req.alias, allow_breaking=req.allow_breaking,
            actor=actor, deadline=self.clock() + timedelta(seconds=self.deploy_timeout),
        )  # fmt: skip

        def first_lines(number: int) -> list[str]:
            lines = [f"recorded {definition.name} v{number} (run {run or 'none'})"]
            if described is not None:
                lines.append(described)
            return lines

        version = await asyncio.to_thread(
            lambda: self.store.create_version(
                definition, code_digest=req.package_digest, artifact_run=run,
                environment_digest=digest, actor=actor, deploy=options,
                progress=first_lines,
            )
        )  # fmt: skip
        log.info(
            "deploy recorded", extra={"fields": {"version": f"{version.service}@{version.label}"}}
        )
        if self.on_recorded is not None:
            self.on_recorded(version)
        return version

    async def advance(self) -> int:
        """Move every unfinished deploy one step (see ``flowhost.lambdas.deploy_steps``);
        returns how many are still unfinished. Safe in many processes at once."""
        return await self.stepper.advance()

    def _promote_step(
        self, service: str, number: int, alias: str, allow_breaking: bool, actor: str
    ) -> None:
        self.promote(service, number, alias=alias, allow_breaking=allow_breaking, actor=actor)

    def record_audits(
        self, service: str, number: int, results: list[AuditResult], actor: str
    ) -> None:
        failed = [r for r in results if not r.passed]
        self.store.record(
            service, "audit_failed" if failed else "audit_passed", actor=actor, version=number,
            detail={"results": [r.model_dump() for r in results]},
        )  # fmt: skip

    def _audit_failures(self, version: VersionRecord) -> list[str] | None:
        """Why audits block ``version``: failed ones, or declared audits never run."""
        for event in self.store.events(version.service, limit=1000):
            if event.version == version.number and event.kind in ("audit_failed", "audit_passed"):
                if event.kind == "audit_passed":
                    return None
                results: list[dict[str, Any]] = event.detail.get("results", [])
                return [f"{r['name']}: {r.get('error')}" for r in results if not r["passed"]]
        if version.definition.audits:
            return [f"audits {', '.join(version.definition.audits)} have not been run"]
        return None

    def promote(
        self,
        service: str,
        number: int,
        *,
        alias: str = PRODUCTION,
        allow_breaking: bool = False,
        force: bool = False,
        actor: str,
    ) -> int | None:
        """Point ``alias`` at ``number`` if audits and schema contracts allow; atomic."""
        candidate = self.store.version(service, number)
        failures = None if force else self._audit_failures(candidate)
        if failures:
            raise AuditFailedError(
                f"{service} v{number} failed its audits, so it is not promoted: "
                + "; ".join(failures)
                + ". Fix the service and deploy again."
            )
        detail: dict[str, Any] = {}
        try:
            current = self.store.resolve(service, alias)
        except NotFoundError:  # the alias's first promote: no contract to keep yet
            current = None
        if current is not None and current.number != number:
            changes = breaking_changes(current.definition, candidate.definition)
            if changes and not allow_breaking:
                raise ContractBrokenError(
                    f"promoting {service} v{number} to {alias} would break clients of "
                    f"v{current.number}: " + "; ".join(changes) + ". Keep the old contract, or "
                    "pass allow_breaking (--allow-breaking) if clients are ready."
                )
            if changes:
                detail["breaking_changes_allowed"] = changes
        previous = self.store.move_alias(service, alias, number, actor=actor, detail=detail)
        self.fleet.route(service, alias, number)
        return previous

    def rollback(self, service: str, *, alias: str = PRODUCTION, actor: str) -> int:
        target = self.store.previous_target(service, alias)
        self.store.move_alias(service, alias, target, actor=actor, kind="rollback")
        self.fleet.route(service, alias, target)
        return target

    async def undeploy(self, service: str, number: int, *, actor: str) -> VersionRecord:
        version = self.store.undeploy(service, number, actor=actor)
        await self.fleet.retire(service, number)
        return version
