"""Deploy, promote, roll back and undeploy versions; the control plane's core.

Generic over the :class:`Fleet` (where instances run and how routes change): the
local platform and the AWS platform each provide one.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from flowhost.errors import DeployError, NotFoundError
from flowhost.lambdas.contracts import breaking_changes
from flowhost.lambdas.environments import lock_key, resolve_environment
from flowhost.lambdas.objectstore import ObjectStore
from flowhost.lambdas.store import PRODUCTION, StateStore, VersionRecord
from flowhost.services.artifacts import resolve_run
from flowhost.services.config import ArtifactBinding
from flowhost.services.definition import ServiceDefinition
from flowhost.services.packaging import package_digest, package_key

__all__ = ["AuditResult", "DeployRequest", "Deployments", "Fleet"]

log = logging.getLogger("flowhost.deployments")


class Fleet(Protocol):
    """Where versions run and how traffic reaches them."""

    def code_dir(self, digest: str) -> Path: ...
    async def launch(self, version: VersionRecord) -> None: ...
    def route(self, service: str, alias: str, number: int) -> None: ...
    async def retire(self, service: str, number: int) -> None: ...


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
    def __init__(self, store: StateStore, objects: ObjectStore, fleet: Fleet) -> None:
        self.store = store
        self.objects = objects
        self.fleet = fleet
        self.progress: dict[tuple[str, int], list[str]] = defaultdict(list)
        self._tasks: set[asyncio.Task[None]] = set()

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

    def _say(self, version: VersionRecord, message: str) -> None:
        self.progress[(version.service, version.number)].append(message)
        log.info(message, extra={"fields": {"version": f"{version.service}@{version.label}"}})

    async def start_deploy(self, req: DeployRequest, actor: str) -> VersionRecord:
        """Record a new version and deploy it in the background; poll it for progress."""
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
        code_dir = await asyncio.to_thread(self.fleet.code_dir, req.package_digest)
        env = await asyncio.to_thread(resolve_environment, definition.environment, code_dir)
        if env.lock is not None and not self.objects.exists(lock_key(env.digest)):
            self.objects.put(lock_key(env.digest), env.lock.encode())
        version = self.store.create_version(
            definition, code_digest=req.package_digest, artifact_run=run,
            environment_digest=env.digest, actor=actor,
        )  # fmt: skip
        self._say(version, f"recorded {definition.name} {version.label} (run {run or 'none'})")
        if env.lock is not None:
            self._say(version, f"environment {env.digest[:19]}... locked")
        task = asyncio.create_task(self._deploy(version, req, actor))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return version

    async def _deploy(self, version: VersionRecord, req: DeployRequest, actor: str) -> None:
        try:
            self._say(version, "starting the first instance")
            await self.fleet.launch(version)
        except DeployError as exc:
            self.store.set_status(version.service, version.number, "failed", exc.message)
            self.store.record(
                version.service, "deploy_failed", actor=actor, version=version.number,
                detail={"error": exc.message},
            )  # fmt: skip
            self._say(version, f"failed: {exc.message}")
            await self.fleet.retire(version.service, version.number)
            return
        version = self.store.set_status(version.service, version.number, "ready")
        self._say(version, "ready")
        if req.promote and not version.definition.audits:
            try:
                self.promote(
                    version.service, version.number, alias=req.alias,
                    allow_breaking=req.allow_breaking, actor=actor,
                )  # fmt: skip
                self._say(version, f"promoted to {req.alias}")
            except DeployError as exc:
                self._say(version, f"not promoted: {exc.message}")

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
            raise DeployError(
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
                raise DeployError(
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

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
