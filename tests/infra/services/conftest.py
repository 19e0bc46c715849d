"""One user-stack program per session: the tiny CPU service (its envelope only) and a
second service whose stack deploys its code through the control plane (``deploy=``,
pinned to a Metaflow run), under the recording mock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from flowhost.infra import Deploy, ServiceSpec
from flowhost.targets import Target
from tests.infra.recording import PlatformRun, Recorded
from tests.infra.services.example.tiny import Scored, Tiny
from tests.infra.services.harness import platform, run_services

PINNED_RUN = "TrainFlow/42"
API = Target(name="platform", url="https://api.example.com", auth="sigv4", region="us-east-1")


@dataclass(frozen=True)
class ServicesRun:
    run: PlatformRun
    specs: dict[str, ServiceSpec]

    def children(self, component: str) -> list[Recorded]:
        """Resources whose parent is the ServiceSpec ``component`` (not grandchildren)."""
        (spec,) = [
            r
            for r in self.run.resources
            if r.type == "flowhost:service:ServiceSpec" and r.name == component
        ]
        return [r for r in self.run.resources if r.parent == spec.urn]

    def descendants(self, component: str) -> list[Recorded]:
        found = self.children(component)
        urns = {r.urn for r in found}
        grand = [r for r in self.run.resources if r.parent in urns]
        return found + grand

    def named(self, name: str) -> Recorded:
        return self.run.named(name)


@pytest.fixture(scope="session")
def services() -> ServicesRun:
    specs: dict[str, ServiceSpec] = {}

    def build() -> dict[str, Any]:
        ref = platform()
        specs["tiny"] = ServiceSpec("tiny", spec=Tiny, platform=ref)
        specs["scored"] = ServiceSpec(
            "scored-svc", spec=Scored, platform=ref, owner="ml-team",
            deploy=Deploy(promote=True, aliases=("canary",), run=PINNED_RUN, target=API),
        )  # fmt: skip
        return {
            f"{key}.{attr}": getattr(spec, attr)
            for key, spec in specs.items()
            for attr in ("task_role_arn", "log_group_name", "envelope_parameter")
        }

    return ServicesRun(run_services(build), specs)
