"""The AWS Fleet: versions are ECS services, routes are ALB listener rules.

``EcsFleet`` implements ``flowhost.lambdas.deployments.Fleet`` over ``EcsCompute`` and
``AlbRoutes``. Version N of service S runs as the ECS service ``<prefix>S-vN`` in the
platform's cluster; its target group is the one that ECS service registers with (read
from ``DescribeServices``, so the fleet needs no second lookup table). With ``versions``
(``EcsVersions``: the control plane owns everything per version) ``begin`` creates the
version's queue, target group, task definition and ECS service from its record and its
service's envelope, and ``retire`` deletes them; ``drift`` compares the cluster with
the records.

On top of the protocol it offers what the scaler and the activator need: ``wake``
(start, wait, then route to the version) and ``park`` (route to the activator, then
scale to zero). The order keeps every request answerable: routes leave a version
before its last task goes, and come back only once a task passes its health check.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from flowhost.errors import DeployError, NotFoundError
from flowhost.lambdas.aws.compute import EcsCompute, ServiceStatus
from flowhost.lambdas.aws.errors import AwsError
from flowhost.lambdas.aws.provision import EcsVersions
from flowhost.lambdas.aws.routes import AlbRoutes, Route
from flowhost.lambdas.fleet import Launch
from flowhost.lambdas.objectstore import ObjectStore
from flowhost.lambdas.store import VersionRecord
from flowhost.services.packaging import package_key, unpack

__all__ = ["EcsFleet", "ecs_service_name"]


def ecs_service_name(service: str, number: int, prefix: str = "") -> str:
    """The ECS service that runs version ``number`` of ``service``: ``<prefix>svc-vN``."""
    return f"{prefix}{service}-v{number}"


class EcsFleet:
    def __init__(
        self,
        compute: EcsCompute,
        routes: AlbRoutes,
        objects: ObjectStore,
        *,
        code_root: Path,
        prefix: str = "",
        versions: EcsVersions | None = None,
    ) -> None:
        self.compute = compute
        self.routes = routes
        self.objects = objects
        self.code_root = code_root  # on Lambda: under /tmp, the only writable place
        self.prefix = prefix
        self.versions = versions

    def ecs_service(self, service: str, number: int) -> str:
        return ecs_service_name(service, number, self.prefix)

    def code_dir(self, digest: str) -> Path:
        """The unpacked code package (deploy reads its requirements), once per digest."""
        target = self.code_root / digest
        if not target.is_dir():
            self.code_root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=self.code_root))
            unpack(self.objects.get(package_key(digest)), tmp)
            try:
                tmp.rename(target)
            except OSError:  # a concurrent deploy unpacked it first
                shutil.rmtree(tmp, ignore_errors=True)
        return target

    def status(self, service: str, number: int) -> ServiceStatus:
        return self.compute.status(self.ecs_service(service, number))

    @staticmethod
    def _target(status: ServiceStatus) -> str:
        if not status.target_group_arns:
            raise DeployError(
                f"ECS service {status.name!r} in cluster {status.cluster!r}: it has no load "
                "balancer target group (got none). Create the version with ServiceSpec, "
                "which attaches its target group."
            )
        return status.target_group_arns[0]

    def target_group(self, service: str, number: int) -> tuple[str, ServiceStatus]:
        """The version's target group ARN and its ECS service's status."""
        status = self.status(service, number)
        return self._target(status), status

    async def begin(self, version: VersionRecord) -> None:
        """Ask ECS for the version's first tasks (at least one, to prove it starts) and
        return; ``check`` follows the rollout."""
        name = self.ecs_service(version.service, version.number)
        count = max(1, version.definition.scaling.min_instances)
        try:
            if self.versions is not None:  # idempotent: a step taken again finds them
                await asyncio.to_thread(self.versions.ensure, version)
            await asyncio.to_thread(self.compute.set_desired, name, count)
        except NotFoundError as error:  # Deployments reports DeployErrors on the version
            raise DeployError(error.message) from error

    async def check(self, version: VersionRecord) -> Launch:
        """What ECS and the ALB report: ``running`` once a task runs and passes its
        target group's health check, a failed rollout (with ECS's events), a service at
        zero (``idle``: begin again), or still starting."""
        name = self.ecs_service(version.service, version.number)
        try:
            status = await asyncio.to_thread(self.compute.status, name)
        except NotFoundError as error:
            return Launch("failed", error.message)
        except AwsError as error:  # throttled or a network blip: the next step asks again
            return Launch("starting", error.message)
        line = f"{name}: {status.describe()}"
        if status.running >= 1 and status.target_group_arns:
            try:
                healthy = await asyncio.to_thread(self.routes.healthy, status.target_group_arns[0])
            except AwsError as error:
                return Launch("starting", f"{line}; {error.message}")
            if healthy:
                return Launch("running", f"{line}, {healthy} healthy target(s)")
            line += ", no healthy target yet (the ALB health check on /readyz)"
        if status.failed:
            return Launch("failed", self.compute.failure(status, "the rollout failed"))
        if status.desired == 0:
            return Launch("idle", line)
        return Launch("starting", line)

    async def expose(self, version: VersionRecord) -> None:
        """Route ``service@vN`` to the version's target group."""
        target, _ = await asyncio.to_thread(self.target_group, version.service, version.number)
        await asyncio.to_thread(self.routes.point, version.service, version.label, target)

    def route(self, service: str, alias: str, number: int) -> None:
        """Point ``service@alias`` at version ``number``; parked if it is at zero."""
        target, status = self.target_group(service, number)
        self.routes.point(service, alias, target, parked=status.at_zero)

    async def retire(self, service: str, number: int) -> None:
        """Remove the version's routes, then scale it to zero; with ``versions``, delete
        what it ran on. A version whose ECS service is already gone has nothing left to
        retire but what ``sweep`` finishes."""
        try:
            target, _ = await asyncio.to_thread(self.target_group, service, number)
        except (NotFoundError, DeployError):
            target = None
        if target is not None:
            await asyncio.to_thread(self.routes.remove_target, target)
            await asyncio.to_thread(self.compute.set_desired, self.ecs_service(service, number), 0)
        if self.versions is not None:
            await asyncio.to_thread(self.versions.remove, service, number)

    def sweep(self, retired: list[tuple[str, int]]) -> int:
        """Delete what retired versions still hold (a target group stays in use while its
        service drains, so the first ``retire`` may leave it); the scaler calls this each
        tick. Returns how many are still not gone."""
        if self.versions is None:
            return 0
        present = self.versions.present(retired)
        return sum(not self.versions.remove(service, number) for service, number in present)

    def drift(self, recorded: dict[str, set[int]]) -> dict[str, list[str]]:
        """Compute with no live version record, and live versions whose compute is gone."""
        if self.versions is None:
            return {"orphaned": [], "missing": []}
        running = self.versions.running_versions()
        orphaned = sorted(
            f"{service}@v{n}"
            for service, numbers in running.items()
            for n in numbers - recorded.get(service, set())
        )
        missing = sorted(
            f"{service}@v{n}"
            for service, numbers in recorded.items()
            for n in numbers - running.get(service, set())
        )
        return {"orphaned": orphaned, "missing": missing}

    async def wake(self, service: str, number: int, count: int = 1) -> list[Route]:
        """Scale a parked version to ``count``, wait for a healthy task, then send its
        routes back to it. The activator calls this for a request held at zero."""
        name = self.ecs_service(service, number)
        target, status = await asyncio.to_thread(self.target_group, service, number)
        if status.desired < count:
            await asyncio.to_thread(self.compute.set_desired, name, count)
        await self.wait_healthy(name, target)
        return await asyncio.to_thread(self.routes.wake, target)

    async def wait_healthy(self, name: str, target: str) -> None:
        """Until a task of ECS service ``name`` runs and passes the health check of its
        target group; ``DeployError`` once the rollout fails or ``start_timeout`` passes."""
        compute = self.compute
        deadline = time.monotonic() + compute.start_timeout
        status = await compute.wait_until_running(name, 1)
        while not await asyncio.to_thread(self.routes.healthy, target):
            if time.monotonic() >= deadline:
                why = f"no healthy target within {compute.start_timeout:g}s"
                raise DeployError(compute.failure(status, why))
            await asyncio.sleep(compute.poll_interval)
            status = await asyncio.to_thread(compute.status, name)
            if status.failed:
                raise DeployError(compute.failure(status, "the rollout failed"))

    def park(self, service: str, number: int) -> list[Route]:
        """Send the version's routes to the activator, then scale it to zero. The
        scaler calls this after ``idle_timeout`` without traffic."""
        target, _ = self.target_group(service, number)
        parked = self.routes.park(target)
        self.compute.set_desired(self.ecs_service(service, number), 0)
        return parked
