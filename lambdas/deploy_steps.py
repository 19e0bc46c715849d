"""``DeployStepper.advance``: move every unfinished deploy one step, from any process.

One step of a deploy, under its lease (see ``flowhost.lambdas.store.deploys``):

- ``recorded``: if the version declares an environment, ask for its build (started once
  per digest, see ``flowhost.lambdas.environments.builds``) and wait, passing on the
  build's lines as progress; a failed build fails the deploy. Then ask the fleet for the
  first instance (``begin``) -> ``starting``, the deadline counted from here.
- ``starting``: ask the fleet how it goes (``check``). Running: route ``service@vN``,
  the version is ready -> ``promoting`` if the deploy asked to promote (and the service
  declares no audits, which the client runs first), else ``done``. Failed: the version is
  failed with the fleet's reason, its compute retired. Idle (nothing asked, e.g. the
  process that began it restarted): ``begin`` again. Past the deadline: failed, naming it.
- ``promoting``: move the alias if audits and contracts allow -> ``done`` either way.

A failed deploy never touches an alias, so production is as it was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

from flowhost.errors import DeployError, FlowhostError, NotFoundError
from flowhost.lambdas.environments.builds import EnvironmentBuilds
from flowhost.lambdas.fleet import Fleet
from flowhost.lambdas.store import StateStore, VersionRecord
from flowhost.lambdas.store.deploys import DeployStore
from flowhost.lambdas.store.records import DeployRecord

__all__ = ["DeployStepper", "Promote"]

_BUILD = "build | "  # progress lines that are the environment build's own

log = logging.getLogger("flowhost.deployments")

# promote(service, number, alias, allow_breaking, actor): DeployError if not allowed
Promote = Callable[[str, int, str, bool, str], object]


class DeployStepper:
    def __init__(
        self,
        store: StateStore,
        deploys: DeployStore,
        fleet: Fleet,
        promote: Promote,
        *,
        lease: float,
        clock: Callable[[], datetime],
        environments: EnvironmentBuilds | None = None,
        deploy_timeout: float = 600.0,
    ) -> None:
        self.store = store
        self.deploys = deploys
        self.fleet = fleet
        self.promote = promote
        self.lease = lease  # seconds one step may take before another process may retry it
        self.clock = clock
        self.environments = environments
        self.deploy_timeout = deploy_timeout  # seconds to start, once the environment is built

    async def advance(self) -> int:
        """Move every unfinished deploy one step; returns how many are still unfinished.
        Safe to run in many processes at once: each step is taken by one of them."""
        unfinished = await asyncio.to_thread(self.deploys.unfinished)
        still = 0
        for deploy in unfinished:
            try:
                still += await self._step(deploy)
            except FlowhostError as exc:  # e.g. the state DB went away mid-step: one line
                log.warning(
                    "deploy step failed",
                    extra={"fields": {"version": deploy.key, "error": exc.message}},
                )
                still += 1
            except Exception:  # one deploy's trouble never stops the others
                log.exception("deploy step failed", extra={"fields": {"version": deploy.key}})
                still += 1
        return still

    async def _step(self, deploy: DeployRecord) -> bool:
        """One step of ``deploy``; True while it is unfinished."""
        now = self.clock()
        if not await asyncio.to_thread(
            self.deploys.claim, deploy.id, deploy.phase, now, self.lease
        ):
            return True  # another process is taking this step (or took it)
        try:
            return await self._take(deploy, now)
        finally:
            await asyncio.to_thread(self.deploys.release, deploy.id)

    async def _take(self, deploy: DeployRecord, now: datetime) -> bool:
        try:
            version = await asyncio.to_thread(self.store.version, deploy.service, deploy.number)
        except NotFoundError:  # the version is gone with its service: nothing to finish
            await asyncio.to_thread(
                self.deploys.move, deploy.id, deploy.phase, "done", "version removed", now=now
            )
            return False
        if version.status == "undeployed":
            await asyncio.to_thread(
                self.deploys.move, deploy.id, deploy.phase, "done", "undeployed", now=now
            )
            await self.fleet.retire(version.service, version.number)
            return False
        if deploy.phase == "promoting":
            await self._promote(deploy, version, now)
            return False
        if deploy.phase == "recorded":
            environment = await self._environment(deploy, version, now)
            if environment != "ready":
                return environment == "building"
            try:
                await self.fleet.begin(version)
            except DeployError as exc:
                await self._fail(deploy, version, exc.message, now)
                return False
            # the deadline is for starting: a build's time does not count against it
            built = version.definition.environment is not None and self.environments is not None
            await asyncio.to_thread(
                self.deploys.move, deploy.id, "recorded", "starting",
                "starting the first instance", now=now,
                deadline=now + timedelta(seconds=self.deploy_timeout) if built else None,
            )  # fmt: skip
            return True
        return await self._check(deploy, version, now)

    async def _environment(
        self, deploy: DeployRecord, version: VersionRecord, now: datetime
    ) -> Literal["ready", "building", "failed"]:
        """The version's environment: built (or none declared), still building (its new
        lines said as progress), or failed (and so is the deploy)."""
        if version.definition.environment is None or self.environments is None:
            return "ready"
        digest = version.environment_digest
        progress = await asyncio.to_thread(
            self.environments.ensure, digest, since=deploy.created_at
        )
        lines = [
            line.message
            for line in await asyncio.to_thread(
                self.deploys.progress, version.service, version.number
            )
        ]
        said = [line for line in lines if line.startswith(_BUILD)]
        if progress.started is not None:
            await asyncio.to_thread(
                self.deploys.say, deploy.id, f"environment build started ({progress.started})"
            )
        earlier = (  # built before this deploy was recorded: its lines are another's
            progress.manifest is not None and progress.manifest.built_at < deploy.created_at
        )
        for line in [] if earlier else progress.lines[len(said) :]:
            await asyncio.to_thread(self.deploys.say, deploy.id, _BUILD + line)
        if progress.state == "failed":
            await self._fail(
                deploy, version,
                f"environment {digest[:19]}... could not be built: {progress.error}. Fix the "
                "requirements (the build's lines are above) and deploy again",
                now,
            )  # fmt: skip
            return "failed"
        if progress.state == "building":
            return "building"
        assert progress.manifest is not None  # built
        ready = (
            f"environment {digest[:19]}... {'was built earlier' if earlier else 'built'}: "
            f"{progress.manifest.summary()}; instances fetch it before the service loads"
        )
        if ready not in lines:  # once, though a failing begin may bring the step back
            await asyncio.to_thread(self.deploys.say, deploy.id, ready)
        return "ready"

    async def _check(self, deploy: DeployRecord, version: VersionRecord, now: datetime) -> bool:
        launch = await self.fleet.check(version)
        if launch.state == "running":
            try:
                await self.fleet.expose(version)
            except (DeployError, NotFoundError) as exc:  # e.g. no target group to route to
                await self._fail(deploy, version, exc.message, now)
                return False
            options = deploy.options
            promote = options.promote and not version.definition.audits
            await asyncio.to_thread(
                self.deploys.move, deploy.id, "starting", "promoting" if promote else "done",
                "ready", now=now, status="ready",
            )  # fmt: skip
            if promote:  # the lease is ours until _step returns: promote now
                await self._promote(deploy, version, now)
            return False
        if launch.state == "failed":
            await self._fail(deploy, version, launch.detail, now)
            return False
        deadline = deploy.options.deadline
        if now >= deadline:
            last = launch.detail or deploy.last_status or "no status"
            await self._fail(
                deploy, version,
                f"{deploy.key}: not running by its deadline {deadline:%Y-%m-%d %H:%M:%S} UTC "
                f"(got {last}). Check the version's logs ('flowhost logs'), its image and the "
                "capacity, or give deploys more time (the deploy timeout), then deploy again",
                now,
            )  # fmt: skip
            return False
        if launch.state == "idle":
            try:
                await self.fleet.begin(version)
            except DeployError as exc:
                await self._fail(deploy, version, exc.message, now)
                return False
        if launch.detail and launch.detail != deploy.last_status:
            await asyncio.to_thread(self.deploys.note, deploy.id, launch.detail, launch.detail)
        return True

    async def _promote(self, deploy: DeployRecord, version: VersionRecord, now: datetime) -> None:
        options = deploy.options
        try:
            current = self.store.resolve(version.service, options.alias).number
        except NotFoundError:
            current = None
        try:
            if current != version.number:  # else: promoted by a step that died before done
                self.promote(
                    version.service, version.number, options.alias, options.allow_breaking,
                    options.actor,
                )  # fmt: skip
            message = f"promoted to {options.alias}"
        except FlowhostError as exc:
            message = f"not promoted: {exc.message}"
        await asyncio.to_thread(self.deploys.move, deploy.id, "promoting", "done", message, now=now)

    async def _fail(
        self, deploy: DeployRecord, version: VersionRecord, error: str, now: datetime
    ) -> None:
        if await asyncio.to_thread(self.deploys.fail, deploy.id, error, now=now):
            log.warning("deploy failed", extra={"fields": {"version": deploy.key, "error": error}})
            await self.fleet.retire(version.service, version.number)
