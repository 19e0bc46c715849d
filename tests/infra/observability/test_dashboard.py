"""The CloudWatch dashboard: name, one widget per metric group, namespaces and dimensions."""

from __future__ import annotations

from typing import Any

import pytest

from flowhost.infra.service.observability import arn_suffix, dashboard_name
from tests.infra.observability.harness import DLQ, QUEUE, REGION, Run

TITLES = [
    "Requests",
    "Errors",
    "Latency (p50, p99)",
    "In-flight requests",
    "Instances",
    "Queue depth and age",
    "Dead-letter queue depth",
    "Cold starts",
]
TG = {
    "TargetGroup": "targetgroup/sentiment-v3/73e2d6bc24d8a067",
    "LoadBalancer": "app/flowhost-dev-alb/50dc6c495c0c9188",
}
SERVICE = {"Environment": "dev", "Service": "sentiment", "Version": "3"}

Metric = tuple[str, str, dict[str, str], dict[str, Any]]


def metrics(run: Run) -> dict[str, list[Metric]]:
    """Widget title -> (namespace, name, dimensions, options) of each of its metrics."""
    found: dict[str, list[Metric]] = {}
    for widget in run.body["widgets"]:
        props = widget["properties"]
        parsed: list[Metric] = []
        for namespace, name, *rest in props["metrics"]:
            *flat, options = rest
            assert len(flat) % 2 == 0, flat
            parsed.append((namespace, name, dict(zip(flat[::2], flat[1::2], strict=True)), options))
        found[props["title"]] = parsed
    return found


def test_name_and_no_tags(ecs: Run) -> None:
    (dashboard,) = ecs.of_type("aws:cloudwatch/dashboard:Dashboard")
    assert dashboard.inputs["dashboardName"] == ecs.dashboard_name == "flowhost-dev-sentiment-v3"
    assert "tags" not in dashboard.inputs  # aws.cloudwatch.Dashboard takes no tags


def test_name_stays_within_the_limit() -> None:
    assert len(dashboard_name("dev", "s" * 300, 12)) == 255


@pytest.mark.parametrize(
    ("arn", "suffix"),
    [
        ("arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/app/a-b/50dc", "app/a-b/50dc"),
        ("arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/t-1/73e2", "targetgroup/t-1/73e2"),
    ],
)
def test_arn_suffix(arn: str, suffix: str) -> None:
    assert arn_suffix(arn) == suffix


@pytest.mark.parametrize("variant", ["ecs", "eks"])
def test_one_widget_per_group_in_two_columns(variant: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(variant)
    widgets = run.body["widgets"]
    assert [w["properties"]["title"] for w in widgets] == TITLES
    assert [(w["x"], w["y"]) for w in widgets] == [(x, y) for y in (0, 6, 12, 18) for x in (0, 12)]
    for widget in widgets:
        assert widget["type"] == "metric"
        assert widget["properties"]["region"] == REGION
        assert widget["properties"]["view"] == "timeSeries"


def test_ecs_metrics(ecs: Run) -> None:
    found = metrics(ecs)
    alb = "AWS/ApplicationELB"
    assert found["Requests"] == [(alb, "RequestCount", TG, {"stat": "Sum", "label": "requests"})]
    assert [(m[0], m[1], m[2], m[3]["stat"]) for m in found["Errors"]] == [
        (alb, "HTTPCode_Target_5XX_Count", TG, "Sum"),
        (alb, "HTTPCode_Target_4XX_Count", TG, "Sum"),
    ]
    assert [(m[0], m[1], m[2], m[3]["stat"]) for m in found["Latency (p50, p99)"]] == [
        (alb, "TargetResponseTime", TG, "p50"),
        (alb, "TargetResponseTime", TG, "p99"),
    ]
    ecs_dims = {"ClusterName": "flowhost-dev", "ServiceName": "sentiment-v3"}
    assert [(m[0], m[1], m[2]) for m in found["Instances"]] == [
        ("ECS/ContainerInsights", "RunningTaskCount", ecs_dims),
        ("ECS/ContainerInsights", "DesiredTaskCount", ecs_dims),
    ]


def test_eks_metrics_come_from_emf_and_container_insights(eks: Run) -> None:
    found = metrics(eks)
    ns = "flowhost/services"
    assert [(m[0], m[1], m[2], m[3]["stat"]) for m in found["Requests"]] == [
        (ns, "Requests", SERVICE, "Sum")
    ]
    assert [(m[1], m[2]) for m in found["Errors"]] == [
        ("ServerErrors", SERVICE),
        ("ClientErrors", SERVICE),
    ]
    assert [(m[1], m[3]["stat"]) for m in found["Latency (p50, p99)"]] == [
        ("RequestDuration", "p50"),
        ("RequestDuration", "p99"),
    ]
    pods = {"ClusterName": "flowhost-dev-gpu", "Namespace": "flowhost-services",
            "Service": "sentiment-v3"}  # fmt: skip
    assert [(m[0], m[1], m[2]) for m in found["Instances"]] == [
        ("ContainerInsights", "service_number_of_running_pods", pods)
    ]
    every = [m for group in found.values() for m in group]
    assert not [m for m in every if m[0] in ("AWS/ApplicationELB", "ECS/ContainerInsights")]


@pytest.mark.parametrize("variant", ["ecs", "eks"])
def test_shared_groups(variant: str, request: pytest.FixtureRequest) -> None:
    found = metrics(request.getfixturevalue(variant))
    ns = "flowhost/services"
    assert [(m[0], m[1], m[2], m[3]["stat"]) for m in found["In-flight requests"]] == [
        (ns, "InFlight", {**SERVICE, "Endpoint": ep}, "Maximum") for ep in ("ep0", "ep1")
    ]
    depth, age = found["Queue depth and age"]
    assert depth[:3] == ("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": QUEUE})
    assert age[:3] == ("AWS/SQS", "ApproximateAgeOfOldestMessage", {"QueueName": QUEUE})
    assert age[3]["yAxis"] == "right"
    assert [m[:3] for m in found["Dead-letter queue depth"]] == [
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": DLQ})
    ]
    assert [(m[0], m[1], m[2], m[3]["stat"]) for m in found["Cold starts"]] == [
        (ns, "ColdStarts", SERVICE, "Sum")
    ]
