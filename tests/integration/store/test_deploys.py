"""Deploys as rows in the state DB, advanced by whichever process runs ``advance()``:
on SQLite and on a real PostgreSQL server, with a fleet whose instances a test starts.

``Compute`` stands for what outlives a control-plane process (ECS, say); each
``Deployments`` gets its own ``FakeFleet`` over it, as each API instance has its own
clients. Nothing else is shared between the "processes" but the database.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flowhost.lambdas.deployments import Deployments, DeployRequest
from flowhost.lambdas.fleet import Launch, LaunchState
from flowhost.lambdas.objectstore import LocalObjectStore
from flowhost.lambdas.store import PRODUCTION, StateStore, VersionRecord
from flowhost.services.packaging import build_package, package_key
from tests.integration.store.support import ECHO

ECHO_BARE = ECHO.model_copy(update={"artifacts": None})  # no Metaflow run to resolve


@dataclass
class Compute:
    """The versions' compute, as a cloud keeps it: asked-for and actual states."""

    states: dict[tuple[str, int], LaunchState] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    routes: dict[tuple[str, str], int] = field(default_factory=dict)
    reasons: dict[tuple[str, int], str] = field(default_factory=dict)


class FakeFleet:
    def __init__(self, compute: Compute, code: Path) -> None:
        self.compute = compute
        self.code = code

    def code_dir(self, digest: str) -> Path:
        return self.code

    async def begin(self, version: VersionRecord) -> None:
        self.compute.calls[f"begin v{version.number}"] += 1
        self.compute.states[(version.service, version.number)] = "starting"

    async def check(self, version: VersionRecord) -> Launch:
        key = (version.service, version.number)
        state = self.compute.states.get(key, "idle")
        return Launch(state, self.compute.reasons.get(key, f"v{version.number} {state}"))

    async def expose(self, version: VersionRecord) -> None:
        self.compute.calls[f"expose v{version.number}"] += 1
        self.compute.routes[(version.service, version.label)] = version.number

    def route(self, service: str, alias: str, number: int) -> None:
        self.compute.routes[(service, alias)] = number

    async def retire(self, service: str, number: int) -> None:
        self.compute.calls[f"retire v{number}"] += 1
        self.compute.states[(service, number)] = "idle"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    url: str
    objects: LocalObjectStore
    compute: Compute
    code: Path
    clock: Clock
    digest: str
    opened: list[StateStore] = field(default_factory=list)

    def process(self) -> Deployments:
        """A fresh control-plane process: its own engine, fleet and (no) memory."""
        store = StateStore.open(self.url)
        store.migrate()
        self.opened.append(store)
        fleet = FakeFleet(self.compute, self.code)
        return Deployments(store, self.objects, fleet, deploy_timeout=600, clock=self.clock)

    def request(self, *, promote: bool = False) -> DeployRequest:
        return DeployRequest(definition=ECHO_BARE, package_digest=self.digest, promote=promote)


@pytest.fixture
def world(store_url: str, tmp_path: Path) -> Iterator[World]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "service.py").write_text("X = 1\n")
    digest, archive = build_package(code)
    objects = LocalObjectStore(tmp_path / "objects")
    objects.put(package_key(digest), archive)
    made = World(store_url, objects, Compute(), code, Clock(), digest)
    yield made
    for store in made.opened:
        store.close()


def progress(deployments: Deployments, number: int) -> list[str]:
    return [line.message for line in deployments.progress("echo", number)]


def test_a_deploy_runs_as_steps_and_is_promoted(world: World) -> None:
    api = world.process()
    version = asyncio.run(api.start_deploy(world.request(promote=True), "alice"))
    assert (version.number, version.status) == (1, "deploying")
    assert progress(api, 1) == ["recorded echo v1 (run none)"]
    assert world.compute.calls == {}  # recorded only: nothing waits on the compute

    assert asyncio.run(api.advance()) == 1
    assert progress(api, 1)[-1] == "starting the first instance"
    assert asyncio.run(api.advance()) == 1  # still starting
    world.compute.states[("echo", 1)] = "running"
    assert asyncio.run(api.advance()) == 0
    assert progress(api, 1) == [
        "recorded echo v1 (run none)", "starting the first instance", "v1 starting", "ready",
        "promoted to production",
    ]  # fmt: skip
    assert api.store.version("echo", 1).status == "ready"
    assert api.store.resolve("echo", PRODUCTION).number == 1
    assert world.compute.routes == {("echo", "v1"): 1, ("echo", PRODUCTION): 1}
    deploy = api.deploys.get("echo", 1)
    assert deploy is not None
    assert deploy.phase == "done"
    assert asyncio.run(api.advance()) == 0  # nothing left: advancing again changes nothing
    assert world.compute.calls == {"begin v1": 1, "expose v1": 1}


def test_two_processes_advancing_one_deploy_take_each_step_once(world: World) -> None:
    first, second = world.process(), world.process()
    asyncio.run(first.start_deploy(world.request(promote=True), "alice"))

    async def both() -> list[int]:
        return list(await asyncio.gather(first.advance(), second.advance()))

    for _ in range(3):
        asyncio.run(both())
    world.compute.states[("echo", 1)] = "running"
    for _ in range(3):
        asyncio.run(both())

    assert world.compute.calls == {"begin v1": 1, "expose v1": 1}
    lines = progress(second, 1)
    assert lines.count("starting the first instance") == 1
    assert lines.count("ready") == 1
    assert lines.count("promoted to production") == 1
    promotes = [e for e in first.store.events("echo") if e.kind == "promote"]
    assert len(promotes) == 1
    assert progress(first, 1) == lines  # every process answers a poll the same


def test_a_deploy_whose_process_died_is_finished_by_another(world: World) -> None:
    dead = world.process()
    asyncio.run(dead.start_deploy(world.request(promote=True), "alice"))
    del dead  # it returned 202 and was frozen for good

    fresh = world.process()
    asyncio.run(fresh.advance())
    world.compute.states[("echo", 1)] = "running"
    assert asyncio.run(fresh.advance()) == 0
    assert fresh.store.version("echo", 1).status == "ready"
    assert fresh.store.resolve("echo", PRODUCTION).number == 1


def test_a_step_cut_short_is_retried_once_its_lease_runs_out(world: World) -> None:
    api = world.process()
    asyncio.run(api.start_deploy(world.request(), "alice"))
    deploy = api.deploys.get("echo", 1)
    assert deploy is not None
    assert api.deploys.claim(deploy.id, "recorded", world.clock(), 30)  # then the process died
    other = world.process()
    assert asyncio.run(other.advance()) == 1
    assert world.compute.calls == {}  # the step is someone else's, for now
    world.clock.now += timedelta(seconds=31)
    asyncio.run(other.advance())
    assert world.compute.calls == {"begin v1": 1}


def test_compute_lost_before_it_ran_is_asked_for_again(world: World) -> None:
    api = world.process()
    asyncio.run(api.start_deploy(world.request(), "alice"))
    asyncio.run(api.advance())
    world.compute.states[("echo", 1)] = "idle"  # e.g. the local platform restarted
    asyncio.run(api.advance())
    assert world.compute.calls["begin v1"] == 2
    assert world.compute.states[("echo", 1)] == "starting"


def test_a_deadline_fails_the_deploy_and_leaves_production_alone(world: World) -> None:
    api = world.process()
    asyncio.run(api.start_deploy(world.request(promote=True), "alice"))
    asyncio.run(api.advance())
    world.compute.states[("echo", 1)] = "running"
    assert asyncio.run(api.advance()) == 0
    assert api.store.resolve("echo", PRODUCTION).number == 1

    asyncio.run(api.start_deploy(world.request(promote=True), "bob"))
    asyncio.run(api.advance())  # starting, and it never runs
    world.clock.now += timedelta(seconds=599)
    assert asyncio.run(api.advance()) == 1
    world.clock.now += timedelta(seconds=1)
    assert asyncio.run(api.advance()) == 0

    failed = api.store.version("echo", 2)
    assert failed.status == "failed"
    assert failed.error == (
        "echo@v2: not running by its deadline 2026-11-24 12:10:00 UTC (got v2 starting). "
        "Check the version's logs ('flowhost logs'), its image and the capacity, or give "
        "deploys more time (the deploy timeout), then deploy again"
    )
    assert progress(api, 2)[-1] == f"failed: {failed.error}"
    assert api.store.resolve("echo", PRODUCTION).number == 1
    assert world.compute.routes[("echo", PRODUCTION)] == 1
    assert world.compute.calls["retire v2"] == 1
    assert world.compute.states[("echo", 2)] == "idle"
    [event] = [e for e in api.store.events("echo") if e.kind == "deploy_failed"]
    assert (event.version, event.actor, event.detail) == (2, "bob", {"error": failed.error})


def test_a_failed_start_reports_the_fleets_reason(world: World) -> None:
    api = world.process()
    asyncio.run(api.start_deploy(world.request(promote=True), "alice"))
    asyncio.run(api.advance())
    world.compute.states[("echo", 1)] = "failed"
    world.compute.reasons[("echo", 1)] = "ECS service 'echo-v1': the rollout failed"
    assert asyncio.run(api.advance()) == 0
    version = api.store.version("echo", 1)
    assert (version.status, version.error) == (
        "failed", "ECS service 'echo-v1': the rollout failed"
    )  # fmt: skip
    assert api.store.aliases("echo") == []
    assert world.compute.calls["retire v1"] == 1


def test_undeploying_a_version_mid_deploy_ends_its_deploy(world: World) -> None:
    api = world.process()
    asyncio.run(api.start_deploy(world.request(), "alice"))
    asyncio.run(api.advance())
    asyncio.run(api.undeploy("echo", 1, actor="alice"))
    assert asyncio.run(api.advance()) == 0
    assert api.store.version("echo", 1).status == "undeployed"
    assert progress(api, 1)[-1] == "undeployed"
