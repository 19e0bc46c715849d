"""The offline engine: run every rule of the pack over recorded resources.

    from policies.engine import PolicyConfig, Resource, evaluate

    violations = evaluate(resources, PolicyConfig(environment="dev"))

Tests use it on hand-made resources, and the platform tests on every resource the
Pulumi programs emit under mocks. The pack (``policies/__main__.py``) runs the same
rules inside ``pulumi preview``/``up``.
"""

from __future__ import annotations

from collections.abc import Iterable

from policies.model import (
    UNKNOWN,
    PolicyConfig,
    Resource,
    ResourceRule,
    Rule,
    StackRule,
    Violation,
    make_urn,
)
from policies.rules import ALL_RULES


def evaluate(
    resources: Iterable[Resource],
    config: PolicyConfig,
    rules: Iterable[Rule] = ALL_RULES,
) -> list[Violation]:
    """Every violation of ``rules`` (all of the pack's by default), in rule order."""
    resources = list(resources)
    found: list[Violation] = []
    for rule in rules:
        if isinstance(rule, ResourceRule):
            for resource in resources:
                if rule.applies_to(resource):
                    found += (_violation(rule, resource, m) for m in rule.check(resource, config))
        else:
            found += (_violation(rule, r, m) for r, m in rule.check(resources, config))
    return found


def _violation(rule: Rule, resource: Resource, message: str) -> Violation:
    return Violation(
        policy=rule.name,
        resource_type=resource.type,
        resource_name=resource.name,
        urn=resource.urn,
        message=message,
    )


__all__ = [
    "ALL_RULES",
    "UNKNOWN",
    "PolicyConfig",
    "Resource",
    "ResourceRule",
    "Rule",
    "StackRule",
    "Violation",
    "evaluate",
    "make_urn",
]
