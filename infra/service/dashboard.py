"""A CPU service's dashboard and alarms, over every version the control plane runs.

The stack owns them (one owner for every resource) but never knows version numbers: the
control plane names each version's resources (``<service>-v<N>`` ECS services,
``<env>-<service>-v<N>`` target groups, ``<queuePrefix><service>-v<N>`` queues). So:

- the dashboard's widgets are CloudWatch ``SEARCH`` expressions over those names, or over
  the runtime's EMF metrics by their ``Service`` dimension; a new version shows up
  without a ``pulumi up``;
- the alarms are Metrics Insights queries over the EMF metrics, aggregated over every
  ``Version`` of the service (dimensions ``Environment`` and ``Service`` are known when
  the stack runs): 5xx responses and the slowest request. Per-version queue alarms would
  need the version's queue names, which only the control plane knows; the dashboard
  shows every version's queue and dead-letter queue instead (docs/aws.md, "Dashboards
  and alarms").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from flowhost.infra.service.grafana import grafana_dashboard
from flowhost.infra.service.observability import (
    ALARM_PERIOD,
    NAMESPACE,
    PERIOD,
    arn_suffix,
    latency_threshold,
)
from flowhost.infra.tags import Tagging
from flowhost.services.definition import ServiceDefinition

__all__ = [
    "SERVER_ERRORS",
    "ServiceDashboard",
    "ServiceDashboardArgs",
    "alarm_queries",
    "service_dashboard_body",
    "service_dashboard_name",
]

SERVER_ERRORS = 5  # 5xx answers in 5 minutes, every version together
EMF_SCHEMA = f"{{{NAMESPACE},Environment,Service,Version}}"


@dataclass(frozen=True)
class ServiceDashboardArgs:
    definition: ServiceDefinition
    alarm_topic_arn: pulumi.Input[str]
    load_balancer_arn: pulumi.Input[str]
    ecs_cluster_name: pulumi.Input[str]
    queue_prefix: pulumi.Input[str]
    tagging: Tagging


def service_dashboard_name(environment: str, service: str) -> str:
    """``flowhost-<env>-<service>`` (CloudWatch allows 255 characters)."""
    return f"flowhost-{environment}-{service}"[:255]


def _search(schema: str, metric: str, terms: dict[str, str], stat: str) -> str:
    where = " ".join(f'{k}="{v}"' for k, v in terms.items())
    return f"SEARCH('{schema} MetricName=\"{metric}\" {where}', '{stat}', {PERIOD})"


def _series(qid: str, expression: str, label: str, **extra: Any) -> list[list[Any]]:
    """One widget metric (a list of one) that is an expression."""
    return [[{"expression": expression, "id": qid, "label": label, **extra}]]


def _widgets(v: dict[str, Any], d: ServiceDefinition) -> list[tuple[str, list[Any]]]:
    """(title, metrics) per widget; ``v`` holds the resolved names."""
    env, service = v["environment"], d.name
    emf = {"Environment": env, "Service": service}
    alb = "{AWS/ApplicationELB,LoadBalancer,TargetGroup}"
    groups = {"LoadBalancer": arn_suffix(v["load_balancer_arn"]),
              "TargetGroup": f"targetgroup/{env}-{service}-v"}  # fmt: skip
    ecs = "{ECS/ContainerInsights,ClusterName,ServiceName}"
    tasks = {"ClusterName": v["ecs_cluster_name"], "ServiceName": f"{service}-v"}
    sqs = "{AWS/SQS,QueueName}"
    queues = {"QueueName": f"{v['queue_prefix']}{service}-v"}
    return [
        ("Requests", _series("requests", _search(alb, "RequestCount", groups, "Sum"), "")),
        ("Errors (5xx, 4xx)", [
            *_series("e5", _search(alb, "HTTPCode_Target_5XX_Count", groups, "Sum"), "5xx"),
            *_series("e4", _search(alb, "HTTPCode_Target_4XX_Count", groups, "Sum"), "4xx"),
        ]),
        ("Latency (p99)", _series("p99", _search(alb, "TargetResponseTime", groups, "p99"), "")),
        ("In-flight requests",
         _series("inflight", _search(EMF_SCHEMA, "InFlight", emf, "Maximum"), "")),
        ("Instances (running)",
         _series("running", _search(ecs, "RunningTaskCount", tasks, "Average"), "")),
        ("Queue depth (every version, with dead letters)", _series(
            "depth", _search(sqs, "ApproximateNumberOfMessagesVisible", queues, "Maximum"), "")),
        ("Oldest queued message (s)", _series(
            "age", _search(sqs, "ApproximateAgeOfOldestMessage", queues, "Maximum"), "")),
        ("Cold starts", _series("cold", _search(EMF_SCHEMA, "ColdStarts", emf, "Sum"), "")),
    ]  # fmt: skip


def service_dashboard_body(values: dict[str, Any], definition: ServiceDefinition) -> dict[str, Any]:
    """The CloudWatch dashboard body: two columns of time-series widgets."""
    widgets = [
        {"type": "metric", "x": (i % 2) * 12, "y": (i // 2) * 6, "width": 12, "height": 6,
         "properties": {"title": title, "view": "timeSeries", "stacked": False,
                        "region": values["region"], "period": PERIOD, "metrics": metrics}}
        for i, (title, metrics) in enumerate(_widgets(values, definition))
    ]  # fmt: skip
    return {"widgets": widgets}


def _insights(function: str, metric: str, environment: str, service: str) -> str:
    """A Metrics Insights query (CloudWatch's SQL dialect, not a database's); environment
    and service are slugs, [a-z0-9-]."""
    source = f'SCHEMA("{NAMESPACE}", Environment, Service, Version)'
    where = f"Environment = '{environment}' AND Service = '{service}'"
    return " ".join(("SELECT", f"{function}({metric})", "FROM", source, "WHERE", where))


def alarm_queries(environment: str, definition: ServiceDefinition) -> dict[str, dict[str, Any]]:
    """Alarm key -> (description, Metrics Insights query, threshold, periods)."""
    d = definition
    return {
        "5xx": {
            "description": f"{d.name}: more than {SERVER_ERRORS} requests answered 5xx in 5 "
                           "minutes, over every version",
            "query": _insights("SUM", "ServerErrors", environment, d.name),
            "threshold": SERVER_ERRORS, "periods": 1,
        },
        "slow-requests": {
            "description": f"{d.name}: a request took more than 80% of the slowest "
                           "endpoint's timeout, 10 minutes running, over every version",
            "query": _insights("MAX", "RequestDuration", environment, d.name),
            "threshold": latency_threshold(d), "periods": 2,
        },
    }  # fmt: skip


class ServiceDashboard(pulumi.ComponentResource):
    """The service's dashboard (CloudWatch and Grafana JSON) and its alarms to the topic."""

    dashboard_name: pulumi.Output[str]
    grafana_json: pulumi.Output[str]

    def __init__(
        self, name: str, args: ServiceDashboardArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:service:Dashboard", name, None, opts)
        d, env = args.definition, args.tagging.environment
        title = service_dashboard_name(env, d.name)
        child = pulumi.ResourceOptions(parent=self)
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        body = pulumi.Output.all(
            region=region, load_balancer_arn=args.load_balancer_arn,
            ecs_cluster_name=args.ecs_cluster_name, queue_prefix=args.queue_prefix,
        ).apply(lambda v: service_dashboard_body({**v, "environment": env}, d))  # fmt: skip
        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=title,
            dashboard_body=body.apply(json.dumps),
            opts=child,
        )
        for key, spec in alarm_queries(env, d).items():
            aws.cloudwatch.MetricAlarm(
                f"{name}-{key}",
                alarm_description=spec["description"],
                metric_queries=[
                    aws.cloudwatch.MetricAlarmMetricQueryArgs(
                        id="q", expression=spec["query"], period=ALARM_PERIOD, return_data=True
                    )
                ],
                evaluation_periods=spec["periods"],
                comparison_operator="GreaterThanThreshold",
                threshold=spec["threshold"],
                alarm_actions=[args.alarm_topic_arn],
                ok_actions=[args.alarm_topic_arn],
                treat_missing_data="notBreaching",
                tags=args.tagging.tags(f"{name}-{key}"),
                opts=child,
            )
        self.dashboard_name = dashboard.dashboard_name
        self.grafana_json = body.apply(
            lambda b: grafana_dashboard(title, b, ["flowhost", f"env:{env}", f"service:{d.name}"])
        )
        self.register_outputs(
            {"dashboard_name": self.dashboard_name, "grafana_json": self.grafana_json}
        )
