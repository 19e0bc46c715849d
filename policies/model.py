"""The data every rule works on: resources, the pack's config, violations and rules.

Nothing here imports Pulumi. The offline engine (``policies.engine``) builds these
from recorded resources; the pack (``policies.pack``) builds them from what the
Pulumi engine passes to CrossGuard. Rules see the same objects either way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

# Tags every taggable AWS resource must carry (set on the resource; provider
# ``defaultTags`` are not visible to policies).
REQUIRED_TAGS: Final = ("flowhost:environment", "flowhost:service", "owner")
# The one sanctioned way to accept traffic from anywhere: a security group tagged
# ``flowhost:edge = public``.
EDGE_TAG: Final = "flowhost:edge"
EDGE_TAG_VALUE: Final = "public"


class _Unknown:
    """A value Pulumi does not know yet (an output of a resource still to be created)."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()


def is_unknown(value: object) -> bool:
    return value is UNKNOWN


def make_urn(type_: str, name: str, *, stack: str = "dev", project: str = "flowhost") -> str:
    """A URN of the shape Pulumi gives a top-level resource (for offline records)."""
    return f"urn:pulumi:{stack}::{project}::{type_}::{name}"


@dataclass(frozen=True)
class Resource:
    """One resource as the rules see it.

    ``props`` are the resource's inputs as the engine passes them (camelCase keys,
    e.g. ``storageEncrypted``); values not known yet are ``UNKNOWN``.
    ``ignore_changes`` are property names as Pulumi records them (``desiredCount``).
    ``dependencies`` and ``property_dependencies`` are URNs.
    """

    type: str
    name: str
    urn: str
    id: str | None
    props: Mapping[str, Any]
    ignore_changes: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """How messages name the resource."""
        return f"{self.type} '{self.name}'"

    def depends_on(self, other: Resource, prop: str) -> bool:
        """True when ``prop`` (or, without per-property data, the resource) depends on ``other``."""
        if prop in self.property_dependencies:
            return other.urn in self.property_dependencies[prop]
        return other.urn in self.dependencies


@dataclass(frozen=True)
class PolicyConfig:
    """What an environment allows; ``from_mapping`` reads it from the pack config."""

    environment: str | None = None
    allowed_gpu_instance_types: frozenset[str] = frozenset()
    required_tags: tuple[str, ...] = REQUIRED_TAGS
    require_deletion_protection: bool | None = None
    require_multi_az: bool | None = None

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def deletion_protection_required(self) -> bool:
        if self.require_deletion_protection is None:
            return self.is_prod
        return self.require_deletion_protection

    @property
    def multi_az_required(self) -> bool:
        if self.require_multi_az is None:
            return self.is_prod
        return self.require_multi_az

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PolicyConfig:
        """Build from pack config; unknown keys are ignored (enforcementLevel and the like)."""
        environment = values.get("environment")
        if environment is not None and not isinstance(environment, str):
            raise ValueError(
                f"policy config: environment must be a string (got {environment!r}). "
                "Set it to the stack's environment, e.g. 'dev' or 'prod'."
            )
        return cls(
            environment=environment,
            allowed_gpu_instance_types=frozenset(
                _strings(values, "allowedGpuInstanceTypes", default=())
            ),
            required_tags=tuple(_strings(values, "requiredTags", default=REQUIRED_TAGS)),
            require_deletion_protection=_optional_bool(values, "requireDeletionProtection"),
            require_multi_az=_optional_bool(values, "requireMultiAz"),
        )


# The config keys ``PolicyConfig.from_mapping`` reads, with their JSON schema.
CONFIG_SCHEMA: Final[Mapping[str, Mapping[str, Any]]] = {
    "environment": {"type": "string", "description": "The stack's environment (dev, prod)."},
    "allowedGpuInstanceTypes": {
        "type": "array",
        "items": {"type": "string"},
        "description": "Accelerated (GPU, Inferentia, Trainium) instance types allowed here.",
    },
    "requiredTags": {
        "type": "array",
        "items": {"type": "string"},
        "description": "Tag keys every taggable AWS resource must carry.",
    },
    "requireDeletionProtection": {
        "type": "boolean",
        "description": "Databases need deletion protection (default: environment is prod).",
    },
    "requireMultiAz": {
        "type": "boolean",
        "description": "RDS instances must be multi-AZ (default: environment is prod).",
    },
}


def _strings(values: Mapping[str, Any], key: str, *, default: Iterable[str]) -> list[str]:
    raw = values.get(key)
    if raw is None:
        return list(default)
    if isinstance(raw, str) or not isinstance(raw, Sequence):
        raise ValueError(f"policy config: {key} must be a list of strings (got {raw!r}).")
    items: list[str] = []
    for item in raw:
        if not isinstance(item, str):
            raise ValueError(f"policy config: {key} must be a list of strings (got {raw!r}).")
        items.append(item)
    return items


def _optional_bool(values: Mapping[str, Any], key: str) -> bool | None:
    raw = values.get(key)
    if raw is None or isinstance(raw, bool):
        return raw
    raise ValueError(f"policy config: {key} must be true or false (got {raw!r}).")


@dataclass(frozen=True)
class Violation:
    policy: str
    resource_type: str
    resource_name: str
    urn: str
    message: str

    def __str__(self) -> str:
        return f"[{self.policy}] {self.message}"


ResourceCheck = Callable[[Resource, PolicyConfig], Iterator[str]]
StackCheck = Callable[[Sequence[Resource], PolicyConfig], Iterator[tuple[Resource, str]]]


@dataclass(frozen=True)
class ResourceRule:
    """A rule about one resource at a time; ``check`` runs only on ``types`` (all if None)."""

    name: str
    description: str
    check: ResourceCheck
    types: frozenset[str] | None
    config_keys: tuple[str, ...] = ()

    def applies_to(self, resource: Resource) -> bool:
        return self.types is None or resource.type in self.types


@dataclass(frozen=True)
class StackRule:
    """A rule that needs several resources at once (a bucket and its public access block)."""

    name: str
    description: str
    check: StackCheck
    config_keys: tuple[str, ...] = ()


Rule = ResourceRule | StackRule


# Helpers the rules share.


def parse_document(value: object) -> Mapping[str, Any] | None:
    """A policy document given as a JSON string or an object; None if unknown or unreadable."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, Mapping):
        return value
    return None


def as_list(value: object) -> list[Any]:
    """IAM's "one or many": a single value becomes a one-element list; None becomes []."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in as_list(document.get("Statement")) if isinstance(s, Mapping)]


def by_type(resources: Sequence[Resource], *types: str) -> list[Resource]:
    return [r for r in resources if r.type in types]


def refers_to(child: Resource, prop: str, target: Resource, *target_keys: str) -> bool:
    """True if ``child.props[prop]`` names ``target``: by its id, by one of its props, or by
    a dependency on its URN (what the engine records when the value is ``target.id``)."""
    value = child.props.get(prop)
    if isinstance(value, str) and not is_unknown(value):
        if target.id is not None and value == target.id:
            return True
        if any(value == target.props.get(key) for key in target_keys):
            return True
    return child.depends_on(target, prop)
