"""Every rule of the pack, by domain. The pack (``policies.pack``) and the offline
engine (``policies.engine``) both run exactly ``ALL_RULES``."""

from __future__ import annotations

from typing import Final

from policies.model import ResourceRule, Rule, StackRule
from policies.rules import (
    api_grants,
    compute,
    credentials,
    database,
    iam,
    logs,
    network,
    storage,
    tags,
)

ALL_RULES: Final[tuple[Rule, ...]] = (
    *storage.RULES,
    *database.RULES,
    *iam.RULES,
    *api_grants.RULES,
    *network.RULES,
    *logs.RULES,
    *tags.RULES,
    *compute.RULES,
    *credentials.RULES,
)
RESOURCE_RULES: Final = tuple(r for r in ALL_RULES if isinstance(r, ResourceRule))
STACK_RULES: Final = tuple(r for r in ALL_RULES if isinstance(r, StackRule))

__all__ = ["ALL_RULES", "RESOURCE_RULES", "STACK_RULES"]
