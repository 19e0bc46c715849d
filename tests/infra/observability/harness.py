"""Run one ``ServiceObservability`` under the recording mock, with fake platform ARNs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import settings

from flowhost.infra.service.observability import (
    ServiceObservability,
    ServiceObservabilityArgs,
)
from flowhost.infra.tags import Tagging
from flowhost.services.config import Resources
from flowhost.services.definition import EndpointDefinition, Payload, ServiceDefinition
from tests.infra.recording import (
    ACCOUNT_ID,
    PROJECT,
    REGION,
    Recorded,
    RecordingMocks,
    RecordingMonitor,
)

ELB = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT_ID}"
ALB_ARN = f"{ELB}:loadbalancer/app/flowhost-dev-alb/50dc6c495c0c9188"
TG_ARN = f"{ELB}:targetgroup/sentiment-v3/73e2d6bc24d8a067"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:flowhost-dev-alarms"
QUEUE = "flowhost-dev-sentiment-v3"
DLQ = "flowhost-dev-sentiment-v3-dlq"
TAGGING = Tagging(environment="dev", owner="ml-team", service="sentiment")


def definition(*, gpu: int = 0, timeouts: tuple[float, ...] = (30.0, 300.0)) -> ServiceDefinition:
    payload = Payload(kind="dict")
    endpoints = tuple(
        EndpointDefinition(name=f"ep{i}", method=f"ep{i}", timeout=t, request=payload,
                           response=payload)
        for i, t in enumerate(timeouts)
    )  # fmt: skip
    return ServiceDefinition(
        name="sentiment",
        class_name="Sentiment",
        entrypoint="sentiment.py:Sentiment",
        endpoints=endpoints,
        resources=Resources(gpu=gpu),
    )


def ecs_args(**changes: Any) -> ServiceObservabilityArgs:
    fields: dict[str, Any] = {
        "definition": definition(),
        "version": 3,
        "alarm_topic_arn": TOPIC_ARN,
        "queue_name": QUEUE,
        "dead_letter_queue_name": DLQ,
        "tagging": TAGGING,
        "load_balancer_arn": ALB_ARN,
        "target_group_arn": TG_ARN,
        "ecs_cluster_name": "flowhost-dev",
        "ecs_service_name": "sentiment-v3",
    }
    return ServiceObservabilityArgs(**{**fields, **changes})


def eks_args(**changes: Any) -> ServiceObservabilityArgs:
    fields: dict[str, Any] = {
        "definition": definition(gpu=1),
        "version": 3,
        "alarm_topic_arn": TOPIC_ARN,
        "queue_name": QUEUE,
        "dead_letter_queue_name": DLQ,
        "tagging": TAGGING,
        "eks_cluster_name": "flowhost-dev-gpu",
        "eks_namespace": "flowhost-services",
    }
    return ServiceObservabilityArgs(**{**fields, **changes})


@dataclass(frozen=True)
class Run:
    resources: list[Recorded]
    dashboard_name: str
    grafana_json: str
    alarm_arns: list[str]

    def of_type(self, token: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == token]

    @property
    def body(self) -> dict[str, Any]:
        (dashboard,) = self.of_type("aws:cloudwatch/dashboard:Dashboard")
        return json.loads(dashboard.inputs["dashboardBody"])

    @property
    def alarms(self) -> dict[str, dict[str, Any]]:
        found = self.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        return {r.name.removeprefix("svc-"): r.inputs for r in found}


def run(args: ServiceObservabilityArgs | Callable[[], ServiceObservabilityArgs]) -> Run:
    """Register ``ServiceObservability("svc", args)`` under a fresh recording mock; ``args``
    may be a function, called inside the program (to pass other resources' outputs)."""
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    settings.ROOT.set(None)
    pulumi.runtime.set_all_config({}, [])
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="dev", preview=False, monitor=monitor)
    resolved: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[None]:
        component = ServiceObservability("svc", args() if callable(args) else args)
        outputs = pulumi.Output.all(
            component.dashboard_name,
            component.grafana_json,
            pulumi.Output.all(*component.alarm_arns),
        )
        return outputs.apply(lambda v: resolved.update(name=v[0], grafana=v[1], arns=v[2]))

    program()
    return Run(list(monitor.recorded), resolved["name"], resolved["grafana"], resolved["arns"])
