"""Every resource the platform program emits (under mocks) passes the whole policy pack,
for both stacks, with each stack's own allow-list; and the pack does catch a resource
the program got wrong (so the clean result means something)."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from tests.infra.recording import ROOT, PlatformRun, Recorded
from tests.policies.loader import load_policy_pack

load_policy_pack()

from policies.engine import PolicyConfig, Resource, evaluate  # noqa: E402


def as_policy_resource(recorded: Recorded) -> Resource:
    return Resource(
        type=recorded.type, name=recorded.name, urn=recorded.urn, id=recorded.id,
        props=recorded.inputs, ignore_changes=recorded.ignore_changes,
        dependencies=recorded.dependencies,
        property_dependencies=dict(recorded.property_dependencies),
    )  # fmt: skip


def pack_config(stack: str) -> PolicyConfig:
    config: dict[str, Any] = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    return PolicyConfig(
        environment=stack,
        allowed_gpu_instance_types=frozenset(config.get("flowhost:gpuInstanceTypes", [])),
    )


def test_the_whole_platform_passes_the_pack(stack: PlatformRun) -> None:
    environment = stack.outputs["environment"]
    resources = [as_policy_resource(r) for r in stack.resources if r.custom]
    assert len(resources) > 80
    violations = evaluate(resources, pack_config(environment))
    assert violations == [], "\n".join(f"{v.policy}: {v.message}" for v in violations)


def test_the_pack_catches_a_resource_gone_wrong(prod: PlatformRun) -> None:
    (database,) = [r for r in prod.resources if r.type == "aws:rds/instance:Instance"]
    broken = dataclasses.replace(
        database, inputs={**database.inputs, "publiclyAccessible": True, "storageEncrypted": False}
    )
    resources = [as_policy_resource(broken if r is database else r) for r in prod.resources]
    failed = {v.policy for v in evaluate(resources, pack_config("prod"))}
    assert failed == {"rds-not-publicly-accessible", "rds-storage-encrypted"}
