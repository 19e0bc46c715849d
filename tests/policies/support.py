"""Building resources and running a few rules for the policy tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from policies.engine import PolicyConfig, Resource, Rule, Violation, evaluate, make_urn

TAGS: Mapping[str, str] = {
    "flowhost:environment": "dev",
    "flowhost:service": "platform",
    "owner": "ml-platform",
}
DEV = PolicyConfig(environment="dev", allowed_gpu_instance_types=frozenset({"g5.xlarge"}))
PROD = PolicyConfig(environment="prod", allowed_gpu_instance_types=frozenset({"g5.xlarge"}))


def res(
    type_: str,
    name: str,
    props: Mapping[str, Any] | None = None,
    *,
    id: str | None = None,
    ignore_changes: Iterable[str] = (),
    dependencies: Iterable[str] = (),
    property_dependencies: Mapping[str, tuple[str, ...]] | None = None,
) -> Resource:
    return Resource(
        type=type_,
        name=name,
        urn=make_urn(type_, name),
        id=id,
        props=dict(props or {}),
        ignore_changes=tuple(ignore_changes),
        dependencies=tuple(dependencies),
        property_dependencies=dict(property_dependencies or {}),
    )


def run(
    rules: Iterable[Rule], resources: Iterable[Resource], config: PolicyConfig = DEV
) -> list[Violation]:
    return evaluate(resources, config, rules)


def messages(violations: Iterable[Violation]) -> list[str]:
    return [v.message for v in violations]
