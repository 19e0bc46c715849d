"""Adapts the rules to pulumi-policy: one policy per rule, enforcement mandatory.

What the Pulumi engine passes (props behind pulumi-policy's unknown-checking proxies,
unknown values as sentinel strings, dependencies as ``PolicyResource`` objects) becomes
a plain ``Resource`` first, so rules see exactly what the offline engine gives them.
A value not known yet (during preview) becomes ``UNKNOWN``; rules skip what they
cannot judge, and ``pulumi up`` checks it once it is known.

This module does not build the ``PolicyPack``: that is ``__main__.py``'s one job.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Final

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
)

from policies.model import (
    CONFIG_SCHEMA,
    UNKNOWN,
    PolicyConfig,
    Resource,
    ResourceRule,
    Rule,
    StackRule,
)
from policies.rules import ALL_RULES

PACK_NAME: Final = "flowhost"
_SENTINELS: Final = frozenset(
    {
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
    }
)


def plain(value: Any) -> Any:
    """A deep, plain copy of a property value: proxies unwrapped, unknowns ``UNKNOWN``."""
    # pulumi-policy's proxies hand out their unchecked target under this key.
    with contextlib.suppress(KeyError, TypeError, IndexError):
        value = value["__target"]
    if isinstance(value, str):
        return UNKNOWN if value in _SENTINELS else value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value


def resource_from_args(args: ResourceValidationArgs) -> Resource:
    props = plain(args.props)
    return Resource(
        type=args.resource_type,
        name=args.name,
        urn=args.urn,
        id=_id(props),
        props=props,
        ignore_changes=tuple(args.opts.ignore_changes),
    )


def resource_from_stack(resource: PolicyResource) -> Resource:
    props = plain(resource.props)
    return Resource(
        type=resource.resource_type,
        name=resource.name,
        urn=resource.urn,
        id=_id(props),
        props=props,
        ignore_changes=tuple(resource.opts.ignore_changes),
        dependencies=tuple(d.urn for d in resource.dependencies),
        property_dependencies={
            key: tuple(d.urn for d in deps) for key, deps in resource.property_dependencies.items()
        },
    )


def _id(props: Mapping[str, Any]) -> str | None:
    """Stack policies see outputs, where bridged AWS resources carry their ``id``."""
    value = props.get("id")
    return value if isinstance(value, str) else None


def _schema(rule: Rule) -> PolicyConfigSchema | None:
    if not rule.config_keys:
        return None
    return PolicyConfigSchema(properties={k: dict(CONFIG_SCHEMA[k]) for k in rule.config_keys})


def resource_policy(rule: ResourceRule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if rule.types is not None and args.resource_type not in rule.types:
            return
        config = PolicyConfig.from_mapping(args.get_config())
        resource = resource_from_args(args)
        for message in rule.check(resource, config):
            report_violation(message, resource.urn)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=_schema(rule),
    )


def stack_policy(rule: StackRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        config = PolicyConfig.from_mapping(args.get_config())
        resources = [resource_from_stack(r) for r in args.resources]
        for resource, message in rule.check(resources, config):
            report_violation(message, resource.urn)

    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=_schema(rule),
    )


def build_policies() -> list[Policy]:
    """One pulumi-policy policy per rule in ``ALL_RULES``, in the same order."""
    return [
        resource_policy(rule) if isinstance(rule, ResourceRule) else stack_policy(rule)
        for rule in ALL_RULES
    ]
