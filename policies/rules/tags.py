"""Tags: every taggable AWS resource says which environment and service it belongs to,
and who owns it.

Taggable means the pulumi-aws class takes a ``tags`` input (``taggable.TAGGABLE_TYPES``,
generated from pulumi-aws), or, for types newer than that list, the resource has a
``tags`` input. Only ``tags`` counts: the provider's ``defaultTags`` are merged by AWS
into ``tagsAll`` and are not among the inputs a policy sees, so the platform sets the
tags on each resource (a stack transformation that merges them in is the simple way).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final

from policies.model import PolicyConfig, Resource, ResourceRule, as_list, is_unknown
from policies.rules.taggable import TAGGABLE_TYPES

ENVIRONMENT_TAG: Final = "flowhost:environment"


def is_taggable(resource: Resource) -> bool:
    return resource.type in TAGGABLE_TYPES or (
        resource.type.startswith("aws:") and "tags" in resource.props
    )


def tags_of(value: object) -> dict[str, object] | None:
    """Tags as a dict: a map, or a list of ``{key, value}`` (autoscaling groups); None if
    unknown."""
    if is_unknown(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    tags: dict[str, object] = {}
    for item in as_list(value):
        if isinstance(item, Mapping) and isinstance(item.get("key"), str):
            tags[item["key"]] = item.get("value")
    return tags


def check_required_tags(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    if not is_taggable(resource):
        return
    tags = tags_of(resource.props.get("tags"))
    if tags is None:
        return
    missing = [k for k in config.required_tags if k not in tags]
    empty = [
        k
        for k in config.required_tags
        if k in tags and not is_unknown(tags[k]) and (not isinstance(tags[k], str) or not tags[k])
    ]
    if missing or empty:
        problems = [f"missing {missing}"] if missing else []
        problems += [f"empty {empty}"] if empty else []
        yield (
            f"{resource.where}: tags must include {list(config.required_tags)} with non-empty "
            f"values ({'; '.join(problems)}; got keys {sorted(tags)}). Set them in the "
            "resource's tags; provider default tags do not count."
        )
    environment = tags.get(ENVIRONMENT_TAG)
    if (
        config.environment is not None
        and isinstance(environment, str)
        and environment
        and environment != config.environment
    ):
        yield (
            f"{resource.where}: tag {ENVIRONMENT_TAG} must be {config.environment!r} in this "
            f"environment (got {environment!r}). Tag resources with the stack's environment."
        )


RULES: Final = (
    ResourceRule(
        name="required-tags",
        description="Taggable AWS resources carry flowhost:environment, flowhost:service and "
        "owner (configurable with requiredTags).",
        check=check_required_tags,
        types=None,
        config_keys=("environment", "requiredTags"),
    ),
)
