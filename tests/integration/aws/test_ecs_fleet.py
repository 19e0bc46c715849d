"""EcsFleet under the real Deployments (SQLite store, local objects) against moto's ECS
and ELBv2: launch, promote, roll back, park, wake and undeploy move ECS desired counts
and ALB rules the way the local fleet moves processes and its route table."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import BaseModel

from flowhost.errors import DeployError
from flowhost.lambdas.aws import AlbRoutes, EcsCompute, EcsFleet
from flowhost.lambdas.deployments import Deployments
from flowhost.lambdas.objectstore import LocalObjectStore
from flowhost.lambdas.store import StateStore, VersionRecord
from flowhost.services import Scaling, WebServiceSpec, definition_of, endpoint
from flowhost.services.packaging import build_package, package_key
from tests.integration.aws.support import Balancer, Cluster


class In(BaseModel):
    text: str


class Echo(WebServiceSpec):
    """Echoes."""

    scaling = Scaling(min_instances=0, max_instances=2)

    @endpoint
    def echo(self, request: In) -> In:
        return request


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    return store


@pytest.fixture
def fleet(
    tmp_path: Path, compute: EcsCompute, routes: AlbRoutes, cluster: Cluster, balancer: Balancer
) -> EcsFleet:
    return EcsFleet(
        compute, routes, LocalObjectStore(tmp_path / "objects"), code_root=tmp_path / "code"
    )


async def start(fleet: EcsFleet, version: VersionRecord) -> None:
    """What a deploy's steps do with the fleet: begin, check until running, expose."""
    await fleet.begin(version)
    while (launch := await fleet.check(version)).state != "running":
        assert launch.state == "starting", launch
        await asyncio.sleep(0.05)
    await fleet.expose(version)


def add_version(store: StateStore, cluster: Cluster, balancer: Balancer) -> tuple[int, str]:
    """Version N of echo in the store, and its ECS service + target group (as ServiceSpec
    would create them, at zero)."""
    version = store.create_version(
        definition_of(Echo), code_digest="sha256-c", artifact_run=None,
        environment_digest="sha256-e", actor="bob",
    )  # fmt: skip
    group = balancer.target_group()
    cluster.service(f"echo-v{version.number}", group)
    balancer.healthy_task(group)
    return version.number, group


def test_the_deployments_lifecycle_on_ecs_and_alb(
    store: StateStore, fleet: EcsFleet, cluster: Cluster, balancer: Balancer
) -> None:
    deployments = Deployments(store, fleet.objects, fleet)
    routes = fleet.routes
    one, group1 = add_version(store, cluster, balancer)
    two, group2 = add_version(store, cluster, balancer)

    asyncio.run(start(fleet, store.version("echo", one)))
    assert fleet.status("echo", one).running == 1  # min_instances 0, but a launch proves it
    assert routes.get("echo", "v1").target_group_arn == group1
    store.set_status("echo", one, "ready")
    deployments.promote("echo", one, actor="bob")
    production = routes.get("echo", "production")
    assert (production.target_group_arn, production.parked) == (group1, False)

    asyncio.run(start(fleet, store.version("echo", two)))
    store.set_status("echo", two, "ready")
    deployments.promote("echo", two, actor="bob")
    assert routes.get("echo", "production").target_group_arn == group2
    assert routes.get("echo", "production").rule_arn == production.rule_arn

    assert deployments.rollback("echo", actor="bob") == one
    assert routes.get("echo", "production").target_group_arn == group1

    # The scaler parks an idle version; a promote to it keeps it parked; the activator wakes it.
    parked = fleet.park("echo", two)
    assert [r.alias for r in parked] == ["v2"]
    assert fleet.status("echo", two).at_zero
    deployments.promote("echo", two, alias="canary", actor="bob")
    assert routes.get("echo", "canary").parked
    woken = asyncio.run(fleet.wake("echo", two))
    assert sorted(r.alias for r in woken) == ["canary", "v2"]
    assert fleet.status("echo", two).running == 1

    deployments.promote("echo", one, alias="canary", actor="bob")
    asyncio.run(deployments.undeploy("echo", two, actor="bob"))
    assert fleet.status("echo", two).desired == 0
    assert [(r.alias, r.target_group_arn) for r in routes.routes("echo")] == [
        ("v1", group1), ("production", group1), ("canary", group1),
    ]  # fmt: skip


def test_a_version_is_running_only_once_a_target_passes_its_health_check(
    store: StateStore, fleet: EcsFleet, cluster: Cluster, balancer: Balancer
) -> None:
    version = store.create_version(
        definition_of(Echo), code_digest="sha256-c", artifact_run=None,
        environment_digest="sha256-e", actor="bob",
    )  # fmt: skip
    group = balancer.target_group()
    cluster.service("echo-v1", group)
    asyncio.run(fleet.begin(version))
    assert fleet.status("echo", 1).running == 1  # ECS says a task runs...
    launch = asyncio.run(fleet.check(version))
    assert launch.state == "starting"  # ...but its server does not answer /readyz yet
    assert launch.detail.endswith("no healthy target yet (the ALB health check on /readyz)")

    fleet.park("echo", 1)
    with pytest.raises(DeployError, match=r"'echo-v1' .*: no healthy target within 5s"):
        asyncio.run(fleet.wake("echo", 1))  # the activator waits as long, then says why

    balancer.healthy_task(group)
    launch = asyncio.run(fleet.check(version))
    assert (launch.state, launch.detail) == ("running", "echo-v1: 1/1 running, 0 pending, "
                                             "rollout COMPLETED, 1 healthy target(s)")  # fmt: skip


def test_beginning_a_version_without_an_ecs_service_is_a_deploy_error(
    store: StateStore, fleet: EcsFleet, cluster: Cluster
) -> None:
    version = store.create_version(
        definition_of(Echo), code_digest="sha256-c", artifact_run=None,
        environment_digest="sha256-e", actor="bob",
    )  # fmt: skip
    with pytest.raises(DeployError) as caught:
        asyncio.run(fleet.begin(version))
    assert caught.value.message.startswith(
        f"ECS service 'echo-v1' in cluster {cluster.name!r}: not found (got "
    )
    launch = asyncio.run(fleet.check(version))
    assert launch.state == "failed"
    assert launch.detail.startswith(f"ECS service 'echo-v1' in cluster {cluster.name!r}: not found")
    asyncio.run(fleet.retire("echo", 1))  # nothing to retire: no error


def test_a_service_without_a_target_group_cannot_be_routed(
    store: StateStore, fleet: EcsFleet, cluster: Cluster
) -> None:
    cluster.service("echo-v7", None)
    with pytest.raises(DeployError, match=r"'echo-v7' .*: it has no load balancer target group"):
        fleet.route("echo", "production", 7)


def test_code_dir_unpacks_the_package_once(fleet: EcsFleet, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "service.py").write_text("X = 1\n")
    digest, archive = build_package(source)
    fleet.objects.put(package_key(digest), archive)
    code = fleet.code_dir(digest)
    assert code == tmp_path / "code" / digest
    assert (code / "service.py").read_text() == "X = 1\n"
    fleet.objects.delete(package_key(digest))
    assert fleet.code_dir(digest) == code  # cached: the store is not read again
