"""Integration tier: the provider behind ``ServiceSpec(deploy=...)`` against a real control
plane: the deployments API (``create_api``) over ``Deployments`` on a SQLite store and
local objects, served by uvicorn on loopback, with a fleet whose versions start at once
(or fail). The provider's methods are called as the Pulumi engine calls them."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from flowhost.errors import DeployError
from flowhost.infra.service.deploy import DeployProvider, pin_conflict
from flowhost.lambdas.api import create_api
from flowhost.lambdas.deployments import Deployments
from flowhost.lambdas.fleet import Launch
from flowhost.lambdas.objectstore import LocalObjectStore
from flowhost.lambdas.store import StateStore, VersionRecord
from flowhost.services import definition_of
from flowhost.services.packaging import build_package, package_key, unpack
from flowhost.targets import Target
from tests.infra.services.example.tiny import Tiny

EXAMPLE = Path(__file__).resolve().parent / "example"


@dataclass
class InstantFleet:
    """Versions run as soon as they are asked for (or fail, for ``failing`` services)."""

    objects: LocalObjectStore
    root: Path
    failing: set[str] = field(default_factory=set[str])
    routes: dict[tuple[str, str], int] = field(default_factory=dict[tuple[str, str], int])
    retired: list[tuple[str, int]] = field(default_factory=list[tuple[str, int]])

    def code_dir(self, digest: str) -> Path:
        target = self.root / digest
        if not target.exists():
            unpack(self.objects.get(package_key(digest)), target)
        return target

    async def begin(self, version: VersionRecord) -> None:
        return None

    async def check(self, version: VersionRecord) -> Launch:
        if version.service in self.failing:
            return Launch("failed", "the container exited (code 3)")
        return Launch("running")

    async def expose(self, version: VersionRecord) -> None:
        return None

    def route(self, service: str, alias: str, number: int) -> None:
        self.routes[(service, alias)] = number

    async def retire(self, service: str, number: int) -> None:
        self.retired.append((service, number))


@dataclass
class ControlPlane:
    deployments: Deployments
    fleet: InstantFleet
    url: str


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[ControlPlane]:
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    objects = LocalObjectStore(tmp_path / "objects")
    fleet = InstantFleet(objects, tmp_path / "code")
    deployments = Deployments(store, objects, fleet)  # type: ignore[arg-type]
    app = create_api(deployments)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))

    async def serve() -> None:
        async def advance() -> None:  # what the platform loop does locally
            while not server.should_exit:
                await deployments.advance()
                await asyncio.sleep(0.02)

        ticker = asyncio.create_task(advance())
        await server.serve(sockets=[sock])
        await ticker

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "the API stopped"
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.01)
    yield ControlPlane(deployments, fleet, f"http://127.0.0.1:{sock.getsockname()[1]}")
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def inputs(plane: ControlPlane, tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """The dynamic resource's inputs as ServiceSpec gives them."""
    digest, archive = build_package(EXAMPLE)
    path = tmp_path / f"{digest}.tar.gz"
    path.write_bytes(archive)
    definition = definition_of(Tiny).model_copy(update={"entrypoint": "tiny.py:Tiny"})
    target = Target(name="test", url=plane.url, auth="none")
    props: dict[str, Any] = {
        "service": "tiny", "definition": definition.model_dump(mode="json"), "digest": digest,
        "archive": str(path), "run": None, "aliases": ["production"], "timeout": 30.0,
        "target": target.model_dump(mode="json"),
    }  # fmt: skip
    return {**props, **changes}


def outs(result: Any) -> dict[str, Any]:
    """A provider result's outputs (the SDK types them optional)."""
    assert result.outs is not None
    return dict(result.outs)


def provider(lines: list[str]) -> DeployProvider:
    return DeployProvider(say=lines.append)


def test_create_uploads_deploys_promotes_and_returns_the_number(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    lines: list[str] = []
    props = inputs(control_plane, tmp_path)
    assert provider(lines).check({}, props).failures == []
    created = provider(lines).create(props)
    assert created.id == "tiny@v1"
    assert outs(created)["number"] == 1
    store = control_plane.deployments.store
    version = store.version("tiny", 1)
    assert (version.status, version.code_digest) == ("ready", props["digest"])
    assert {a.name: a.version for a in store.aliases("tiny")} == {"production": 1}
    assert control_plane.fleet.routes[("tiny", "production")] == 1
    assert any("uploaded code sha256-" in line for line in lines)
    assert any("recorded tiny v1" in line for line in lines)  # the deploy's progress lines
    assert lines[-1] == "[flowhost] tiny: production -> v1"
    # A second stack deploy of new code gets the control plane's next number.
    again = provider(lines).create(inputs(control_plane, tmp_path, aliases=[]))
    assert outs(again)["number"] == 2
    assert {a.name: a.version for a in store.aliases("tiny")} == {"production": 1}


def test_a_new_digest_or_run_replaces_and_aliases_only_update(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    olds = {**inputs(control_plane, tmp_path), "number": 1}
    same = DeployProvider().diff("tiny@v1", olds, inputs(control_plane, tmp_path))
    assert (same.changes, same.replaces) == (False, [])
    other = inputs(control_plane, tmp_path, digest="sha256-" + "0" * 64)
    replaced = DeployProvider().diff("tiny@v1", olds, other)
    assert (replaced.changes, replaced.replaces) == (True, ["digest"])
    rerun = DeployProvider().diff("tiny@v1", olds, inputs(control_plane, tmp_path, run="F/2"))
    assert rerun.replaces == ["run"]
    moved = DeployProvider().diff(
        "tiny@v1", olds, inputs(control_plane, tmp_path, aliases=["production", "canary"])
    )
    assert (moved.changes, moved.replaces) == (True, [])


def test_update_moves_new_aliases_and_delete_undeploys(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    lines: list[str] = []
    first = provider(lines).create(inputs(control_plane, tmp_path))
    second = provider(lines).create(inputs(control_plane, tmp_path, aliases=[]))
    olds = outs(second)
    news = inputs(control_plane, tmp_path, aliases=["canary"])
    updated = provider(lines).update(second.id, olds, news)
    assert updated.outs is not None
    assert outs(updated)["number"] == 2
    store = control_plane.deployments.store
    assert {a.name: a.version for a in store.aliases("tiny")} == {"production": 1, "canary": 2}
    # An aliased version stays: the control plane refuses, naming the alias.
    with pytest.raises(DeployError, match="still the target of alias\\(es\\) canary"):
        provider(lines).delete(second.id, olds)
    third = provider(lines).create(inputs(control_plane, tmp_path, aliases=[]))
    provider(lines).delete(third.id, outs(third))
    assert control_plane.fleet.retired == [("tiny", 3)]
    assert store.version("tiny", 3).status == "undeployed"
    assert lines[-1] == "[flowhost] tiny: undeployed v3"
    provider(lines).delete(first.id, {**outs(first), "number": 99})  # already gone


def test_a_pinned_version_with_other_code_fails_at_preview_naming_both_digests(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    recorded = provider([]).create(inputs(control_plane, tmp_path))
    other = "sha256-" + "0" * 64
    news = inputs(control_plane, tmp_path, digest=other, pinned=1)
    (failure,) = DeployProvider().check({}, news).failures
    expected = pin_conflict("tiny", 1, other, outs(recorded)["digest"])
    assert failure.property == "version"
    assert failure.reason == expected
    assert "\n" not in expected
    assert other in expected
    assert outs(recorded)["digest"] in expected
    with pytest.raises(DeployError) as error:
        DeployProvider().diff(recorded.id, outs(recorded), news)
    assert str(error.value) == expected
    # The same digest pinned is adopted, not deployed again.
    lines: list[str] = []
    adopted = provider(lines).create(inputs(control_plane, tmp_path, pinned=1, aliases=[]))
    assert outs(adopted)["number"] == 1
    assert [v.number for v in control_plane.deployments.store.versions("tiny")] == [1]
    assert lines == ["[flowhost] tiny: v1 already has this code: adopted"]


def test_a_pin_the_control_plane_would_not_assign_is_undone(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    with pytest.raises(
        DeployError,
        match=r"version=5 was pinned, but the control plane "
        r"numbered this deploy v1 \(undeployed again\)",
    ):
        provider([]).create(inputs(control_plane, tmp_path, pinned=5))
    assert control_plane.fleet.retired == [("tiny", 1)]


def test_a_failed_deploy_says_why_and_moves_no_alias(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    provider([]).create(inputs(control_plane, tmp_path))
    control_plane.fleet.failing.add("tiny")
    with pytest.raises(DeployError) as error:
        provider([]).create(inputs(control_plane, tmp_path))
    message = str(error.value)
    assert message.startswith("ServiceSpec 'tiny': v2 failed to deploy (")
    assert "the container exited (code 3)" in message
    assert message.endswith("production is unchanged.")
    store = control_plane.deployments.store
    assert {a.name: a.version for a in store.aliases("tiny")} == {"production": 1}
