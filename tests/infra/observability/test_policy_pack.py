"""The dashboard and alarms pass the whole policy pack (tags on alarms, nothing public)."""

from __future__ import annotations

import dataclasses

import pytest

from tests.infra.observability.harness import Run
from tests.infra.test_policy_pack import as_policy_resource, pack_config
from tests.policies.loader import load_policy_pack

load_policy_pack()

from policies.engine import evaluate  # noqa: E402


@pytest.mark.parametrize("variant", ["ecs", "eks"])
def test_passes_the_pack(variant: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(variant)
    resources = [as_policy_resource(r) for r in run.resources if r.custom]
    assert len(resources) == 5
    violations = evaluate(resources, pack_config("dev"))
    assert violations == [], "\n".join(f"{v.policy}: {v.message}" for v in violations)


def test_an_untagged_alarm_is_caught(ecs: Run) -> None:
    """So the clean result above means the pack looked at the alarms."""
    alarm = ecs.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")[0]
    untagged = dataclasses.replace(
        alarm, inputs={k: v for k, v in alarm.inputs.items() if k != "tags"}
    )
    violations = evaluate([as_policy_resource(untagged)], pack_config("dev"))
    assert violations, "the pack let an alarm without tags through"
