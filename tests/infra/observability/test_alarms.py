"""The four alarms: exact set, thresholds, operators, actions, missing data, metric math."""

from __future__ import annotations

import re
from typing import Any

import pulumi_aws as aws
import pytest

from flowhost.infra.service.observability import (
    ServiceObservabilityArgs,
    age_threshold,
    latency_threshold,
)
from tests.infra.observability.harness import (
    DLQ,
    QUEUE,
    TOPIC_ARN,
    Run,
    definition,
    ecs_args,
    run,
)

KEYS = {"5xx-rate", "p99-latency", "dlq-not-empty", "queue-age"}
TG = {
    "TargetGroup": "targetgroup/sentiment-v3/73e2d6bc24d8a067",
    "LoadBalancer": "app/flowhost-dev-alb/50dc6c495c0c9188",
}
SERVICE = {"Environment": "dev", "Service": "sentiment", "Version": "3"}


@pytest.fixture(params=["ecs", "eks"])
def variant(request: pytest.FixtureRequest) -> Run:
    return request.getfixturevalue(request.param)


def test_exact_set_with_actions_tags_and_missing_data(variant: Run) -> None:
    alarms = variant.alarms
    assert set(alarms) == KEYS
    assert len(variant.alarm_arns) == 4
    for key, alarm in alarms.items():
        assert alarm["alarmActions"] == [TOPIC_ARN]
        assert alarm["okActions"] == [TOPIC_ARN]
        assert alarm["treatMissingData"] == "notBreaching"
        assert alarm["comparisonOperator"] == "GreaterThanThreshold"
        assert alarm["tags"] == {
            "flowhost:environment": "dev",
            "flowhost:service": "sentiment",
            "owner": "ml-team",
            "Name": f"svc-{key}",
        }
        assert alarm["alarmDescription"].startswith("sentiment v3: ")


def test_thresholds_derive_from_the_definition() -> None:
    assert latency_threshold(definition(timeouts=(30.0, 300.0))) == 240.0
    assert latency_threshold(definition(timeouts=(2.5,))) == 2.0
    assert age_threshold(definition(timeouts=(30.0, 300.0))) == 900.0
    assert age_threshold(definition(timeouts=(1200.0,))) == 2400.0


def test_queue_alarms(variant: Run) -> None:
    alarms = variant.alarms
    dlq, age = alarms["dlq-not-empty"], alarms["queue-age"]
    assert (dlq["namespace"], dlq["metricName"], dlq["dimensions"]) == (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": DLQ}
    )  # fmt: skip
    assert (dlq["statistic"], dlq["threshold"], dlq["period"]) == ("Maximum", 0, 300)
    assert (age["namespace"], age["metricName"], age["dimensions"]) == (
        "AWS/SQS", "ApproximateAgeOfOldestMessage", {"QueueName": QUEUE}
    )  # fmt: skip
    assert (age["statistic"], age["threshold"], age["evaluationPeriods"]) == ("Maximum", 900, 1)


@pytest.mark.parametrize(
    ("name", "namespace", "metric", "dims"),
    [
        ("ecs", "AWS/ApplicationELB", "TargetResponseTime", TG),
        ("eks", "flowhost/services", "RequestDuration", SERVICE),
    ],
)
def test_p99_latency(name: str, namespace: str, metric: str, dims: dict[str, str],
                     request: pytest.FixtureRequest) -> None:  # fmt: skip
    alarm = request.getfixturevalue(name).alarms["p99-latency"]
    assert (alarm["namespace"], alarm["metricName"], alarm["dimensions"]) == (
        namespace,
        metric,
        dims,
    )
    assert alarm["extendedStatistic"] == "p99"
    assert "statistic" not in alarm
    assert (alarm["threshold"], alarm["period"], alarm["evaluationPeriods"]) == (240, 300, 2)


def referenced_ids(expression: str) -> set[str]:
    """Metric ids an expression uses: lowercase-led names (functions are upper case)."""
    return set(re.findall(r"\b[a-z][A-Za-z0-9_]*\b", expression))


@pytest.mark.parametrize(
    ("name", "namespace", "errors", "requests", "dims"),
    [
        ("ecs", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "RequestCount", TG),
        ("eks", "flowhost/services", "ServerErrors", "Requests", SERVICE),
    ],
)
def test_5xx_rate_metric_math(
    name: str, namespace: str, errors: str, requests: str, dims: dict[str, str],
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    alarm = request.getfixturevalue(name).alarms["5xx-rate"]
    assert (alarm["threshold"], alarm["evaluationPeriods"]) == (5, 1)
    assert not {"metricName", "namespace", "statistic", "period"} & set(alarm)
    queries: list[dict[str, Any]] = alarm["metricQueries"]
    by_id = {q["id"]: q for q in queries}
    assert len(by_id) == len(queries) == 3
    (result,) = [q for q in queries if q["returnData"]]
    expression = result["expression"]
    assert "metric" not in result
    assert referenced_ids(expression) == set(by_id) - {result["id"]}
    assert expression.count("(") == expression.count(")")
    metrics = {q["metric"]["metricName"]: q["metric"] for q in queries if "metric" in q}
    assert set(metrics) == {errors, requests}
    for metric in metrics.values():
        assert (metric["namespace"], metric["dimensions"]) == (namespace, dims)
        assert (metric["stat"], metric["period"]) == ("Sum", 300)
    assert by_id["errors"]["metric"]["metricName"] == errors


def test_inputs_given_as_other_resources_outputs() -> None:
    """As ServiceSpec passes them: the topic, queues and target group are Outputs."""

    def args() -> ServiceObservabilityArgs:
        topic = aws.sns.Topic("topic")
        queue, dlq = aws.sqs.Queue("queue", name="q"), aws.sqs.Queue("dlq", name="q-dlq")
        tg = aws.lb.TargetGroup("tg", port=8080, protocol="HTTP")
        return ecs_args(alarm_topic_arn=topic.arn, queue_name=queue.name,
                        dead_letter_queue_name=dlq.name, target_group_arn=tg.arn)  # fmt: skip

    recorded = run(args)
    alarms = recorded.alarms
    topic = "arn:aws:sns:us-east-1:123456789012:topic/topic"
    assert {a["alarmActions"][0] for a in alarms.values()} == {topic}
    assert alarms["queue-age"]["dimensions"] == {"QueueName": "q"}
    assert alarms["dlq-not-empty"]["dimensions"] == {"QueueName": "q-dlq"}
    assert alarms["p99-latency"]["dimensions"]["TargetGroup"] == "targetgroup/tg"
    requests = recorded.body["widgets"][0]["properties"]["metrics"][0]
    assert requests[2:4] == ["TargetGroup", "targetgroup/tg"]
