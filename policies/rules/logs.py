"""CloudWatch Logs: every log group expires its events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from policies.model import PolicyConfig, Resource, ResourceRule, is_unknown

LOG_GROUP: Final = "aws:cloudwatch/logGroup:LogGroup"
# The values CloudWatch Logs accepts for a log group's retention. (The engine passes
# numbers as floats: 30.0 is in this set.)
RETENTION_DAYS: Final = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192}
    | {2557, 2922, 3288, 3653}
)


def check_log_group_retention(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    del config
    value = resource.props.get("retentionInDays")
    if is_unknown(value):
        return
    if value is None or value == 0:
        yield (
            f"{resource.where}: retentionInDays must be set (got {value!r}); without it "
            "events are kept forever. Set retention_in_days, e.g. 30."
        )
    elif (
        isinstance(value, bool) or not isinstance(value, int | float) or value not in RETENTION_DAYS
    ):
        yield (
            f"{resource.where}: retentionInDays must be one of CloudWatch's values (got "
            f"{value!r}). Use one of {sorted(RETENTION_DAYS)}."
        )


RULES: Final = (
    ResourceRule(
        name="cloudwatch-log-group-retention",
        description="CloudWatch log groups set retentionInDays to a value CloudWatch accepts.",
        check=check_log_group_retention,
        types=frozenset({LOG_GROUP}),
    ),
)
