"""One user-stack program per session: the tiny CPU service (with the production alias)
and a second service pinned to a Metaflow run, under the recording mock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from flowhost.infra import ServiceSpec
from tests.infra.recording import PlatformRun, Recorded
from tests.infra.services.example.tiny import Scored, Tiny
from tests.infra.services.harness import platform, run_services

PINNED_RUN = "TrainFlow/42"


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

    def named(self, name: str) -> Recorded:
        return self.run.named(name)


@pytest.fixture(scope="session")
def services() -> ServicesRun:
    specs: dict[str, ServiceSpec] = {}

    def build() -> dict[str, Any]:
        ref = platform()
        specs["tiny"] = ServiceSpec("tiny", spec=Tiny, platform=ref, aliases=["production"])
        specs["scored"] = ServiceSpec(
            "scored-v2", spec=Scored, platform=ref, version=2, run=PINNED_RUN,
            aliases=["production", "canary"], owner="ml-team",
        )  # fmt: skip
        return {
            f"{key}.{attr}": getattr(spec, attr)
            for key, spec in specs.items()
            for attr in ("queue_arn", "task_role_arn", "target_group_arn", "log_group_name")
        }

    return ServicesRun(run_services(build), specs)
