"""CloudWatch log groups expire their events."""

from typing import Any

import pytest

from policies.rules import logs
from policies.rules.logs import LOG_GROUP
from tests.policies.support import messages, res, run


@pytest.mark.parametrize("days", [1, 30, 30.0, 3653])
def test_retention_cloudwatch_accepts_passes(days: float) -> None:
    assert run(logs.RULES, [res(LOG_GROUP, "api", {"retentionInDays": days})]) == []


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({}, "retentionInDays must be set"),
        ({"retentionInDays": 0}, "retentionInDays must be set"),
        ({"retentionInDays": 42}, "one of CloudWatch's values"),
        ({"retentionInDays": "30"}, "one of CloudWatch's values"),
    ],
)
def test_missing_or_invalid_retention_fails(props: dict[str, Any], expected: str) -> None:
    found = messages(run(logs.RULES, [res(LOG_GROUP, "api", props)]))
    assert len(found) == 1
    assert expected in found[0]
    assert "'api'" in found[0]
