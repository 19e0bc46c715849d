"""One service version's CloudWatch dashboard and alarms, and the dashboard as Grafana JSON.

CPU services are read from the ALB (their target group) and ECS Container Insights, GPU
services from the runtime's EMF metrics and EKS Container Insights; both from ``AWS/SQS``.
The runtime publishes EMF in ``flowhost/services`` (where ADOT exports and the boundary allows):
``Requests``, ``ServerErrors`` (5xx), ``ClientErrors`` (4xx), ``ColdStarts`` (Count, 1 per
event), ``RequestDuration`` (Seconds, per request) and ``InFlight`` (Count, sampled), with
dimension sets ``[Environment, Service, Version]`` and, except ``ColdStarts``,
``[Environment, Service, Version, Endpoint]`` (``Version`` the bare number, ``"3"``). The
contract and the alarm thresholds are in docs/aws.md, "Dashboards and alarms".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from flowhost.errors import DeployError
from flowhost.infra.service.grafana import grafana_dashboard
from flowhost.infra.tags import Tagging
from flowhost.services.definition import ServiceDefinition

__all__ = [
    "ERROR_RATE_PERCENT",
    "LATENCY_FRACTION",
    "NAMESPACE",
    "ServiceObservability",
    "ServiceObservabilityArgs",
    "age_threshold",
    "arn_suffix",
    "dashboard_name",
    "latency_threshold",
    "workload_name",
]

NAMESPACE = "flowhost/services"
ERROR_RATE_PERCENT = 5.0
LATENCY_FRACTION = 0.8
MIN_AGE_SECONDS = 900.0
PERIOD = 60
ALARM_PERIOD = 300


@dataclass(frozen=True)
class ServiceObservabilityArgs:
    definition: ServiceDefinition
    version: int
    alarm_topic_arn: pulumi.Input[str]
    queue_name: pulumi.Input[str]
    dead_letter_queue_name: pulumi.Input[str]
    tagging: Tagging
    load_balancer_arn: pulumi.Input[str] | None = None
    target_group_arn: pulumi.Input[str] | None = None
    ecs_cluster_name: pulumi.Input[str] | None = None
    ecs_service_name: pulumi.Input[str] | None = None
    eks_cluster_name: pulumi.Input[str] | None = None
    eks_namespace: pulumi.Input[str] | None = None


ECS_FIELDS = ("load_balancer_arn", "target_group_arn", "ecs_cluster_name", "ecs_service_name")
EKS_FIELDS = ("eks_cluster_name", "eks_namespace")


def dashboard_name(environment: str, service: str, version: int) -> str:
    """``flowhost-<env>-<service>-v<N>`` (CloudWatch allows 255 characters)."""
    return f"flowhost-{environment}-{service}-v{version}"[:255]


def workload_name(service: str, version: int) -> str:
    """The Kubernetes Service a GPU version runs behind (Container Insights' ``Service``)."""
    return f"{service}-v{version}"


def arn_suffix(arn: str | None) -> str:
    """The CloudWatch dimension of an ALB or target group ARN: ``app/<name>/<id>`` or
    ``targetgroup/<name>/<id>``."""
    resource = (arn or "").split(":", 5)[-1]
    return resource.removeprefix("loadbalancer/")


def latency_threshold(definition: ServiceDefinition) -> float:
    """p99 seconds to alarm at: ``LATENCY_FRACTION`` of the slowest endpoint's timeout."""
    return round(LATENCY_FRACTION * max(ep.timeout for ep in definition.endpoints), 3)


def age_threshold(definition: ServiceDefinition) -> float:
    """Oldest queued message age to alarm at, in seconds: 15 minutes, or twice the slowest
    endpoint's timeout when that is longer (a message may wait behind one such call)."""
    return max(MIN_AGE_SECONDS, 2 * max(ep.timeout for ep in definition.endpoints))


def _emf_dims(environment: str, definition: ServiceDefinition, version: int) -> dict[str, str]:
    return {"Environment": environment, "Service": definition.name, "Version": str(version)}


def _metric(namespace: str, name: str, dims: Mapping[str, str], stat: str, label: str,
            **extra: Any) -> list[Any]:  # fmt: skip
    """One CloudWatch widget metric in the full array form."""
    flat = [part for pair in dims.items() for part in pair]
    return [namespace, name, *flat, {"stat": stat, "label": label, **extra}]


def _widgets(v: Mapping[str, Any], definition: ServiceDefinition) -> list[tuple[str, list[Any]]]:
    """(title, metrics) per widget, dimensions resolved. ``v`` holds the resolved inputs."""
    service = _emf_dims(v["environment"], definition, v["version"])
    sqs = "AWS/SQS"
    if definition.uses_gpu:
        requests = [_metric(NAMESPACE, "Requests", service, "Sum", "requests")]
        errors = [
            _metric(NAMESPACE, "ServerErrors", service, "Sum", "5xx"),
            _metric(NAMESPACE, "ClientErrors", service, "Sum", "4xx"),
        ]
        latency = [_metric(NAMESPACE, "RequestDuration", service, s, s) for s in ("p50", "p99")]
        pods = {"ClusterName": v["eks_cluster_name"], "Namespace": v["eks_namespace"],
                "Service": workload_name(definition.name, v["version"])}  # fmt: skip
        instances = [_metric("ContainerInsights", "service_number_of_running_pods", pods,
                             "Average", "running pods")]  # fmt: skip
    else:
        alb = "AWS/ApplicationELB"
        tg = {"TargetGroup": arn_suffix(v["target_group_arn"]),
              "LoadBalancer": arn_suffix(v["load_balancer_arn"])}  # fmt: skip
        requests = [_metric(alb, "RequestCount", tg, "Sum", "requests")]
        errors = [
            _metric(alb, "HTTPCode_Target_5XX_Count", tg, "Sum", "5xx"),
            _metric(alb, "HTTPCode_Target_4XX_Count", tg, "Sum", "4xx"),
        ]
        latency = [_metric(alb, "TargetResponseTime", tg, s, s) for s in ("p50", "p99")]
        ecs = {"ClusterName": v["ecs_cluster_name"], "ServiceName": v["ecs_service_name"]}
        instances = [
            _metric("ECS/ContainerInsights", "RunningTaskCount", ecs, "Average", "running"),
            _metric("ECS/ContainerInsights", "DesiredTaskCount", ecs, "Average", "desired"),
        ]
    in_flight = [
        _metric(NAMESPACE, "InFlight", {**service, "Endpoint": ep.name}, "Maximum", ep.name)
        for ep in definition.endpoints
    ]
    return [
        ("Requests", requests),
        ("Errors", errors),
        ("Latency (p50, p99)", latency),
        ("In-flight requests", in_flight),
        ("Instances", instances),
        ("Queue depth and age", [
            _metric(sqs, "ApproximateNumberOfMessagesVisible", {"QueueName": v["queue"]},
                    "Maximum", "visible"),
            _metric(sqs, "ApproximateAgeOfOldestMessage", {"QueueName": v["queue"]},
                    "Maximum", "oldest (s)", yAxis="right"),
        ]),
        ("Dead-letter queue depth", [
            _metric(sqs, "ApproximateNumberOfMessagesVisible", {"QueueName": v["dlq"]},
                    "Maximum", "visible"),
        ]),
        ("Cold starts", [_metric(NAMESPACE, "ColdStarts", service, "Sum", "cold starts")]),
    ]  # fmt: skip


def dashboard_body(values: Mapping[str, Any], definition: ServiceDefinition) -> dict[str, Any]:
    """The CloudWatch dashboard body: two columns of time-series widgets."""
    region = values["region"]
    widgets = [
        {"type": "metric", "x": (i % 2) * 12, "y": (i // 2) * 6, "width": 12, "height": 6,
         "properties": {"title": title, "view": "timeSeries", "stacked": False,
                        "region": region, "period": PERIOD, "metrics": metrics}}
        for i, (title, metrics) in enumerate(_widgets(values, definition))
    ]  # fmt: skip
    return {"widgets": widgets}


def _validate(name: str, args: ServiceObservabilityArgs) -> None:
    where = f"ServiceObservability {name!r} (service {args.definition.name!r})"
    if args.version < 1:
        raise DeployError(f"{where}: version must be 1 or more (got {args.version}).")
    if not args.definition.endpoints:
        raise DeployError(f"{where}: the service has no endpoints. Add an @endpoint.")
    gpu = args.definition.uses_gpu
    needed, other = (EKS_FIELDS, ECS_FIELDS) if gpu else (ECS_FIELDS, EKS_FIELDS)
    kind = "a GPU (EKS)" if gpu else "a CPU (ECS)"
    missing = [f for f in needed if getattr(args, f) is None]
    if missing:
        raise DeployError(f"{where}: {kind} service needs {', '.join(missing)} (got None). "
                          f"Pass them from the service's resources.")  # fmt: skip
    extra = [f for f in other if getattr(args, f) is not None]
    if extra:
        raise DeployError(f"{where}: {kind} service does not use {', '.join(extra)}. "
                          "Leave them unset.")  # fmt: skip


def _query(qid: str, namespace: str, name: str, dims: Mapping[str, pulumi.Input[str]],
           stat: str = "Sum") -> aws.cloudwatch.MetricAlarmMetricQueryArgs:  # fmt: skip
    metric = aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
        namespace=namespace, metric_name=name, dimensions=dict(dims), stat=stat,
        period=ALARM_PERIOD)  # fmt: skip
    return aws.cloudwatch.MetricAlarmMetricQueryArgs(id=qid, return_data=False, metric=metric)


def _alarm_specs(args: ServiceObservabilityArgs) -> dict[str, dict[str, Any]]:
    """MetricAlarm arguments per alarm key (without actions, tags and missing-data handling)."""
    d = args.definition
    if d.uses_gpu:
        dims: dict[str, pulumi.Input[str]] = dict(
            _emf_dims(args.tagging.environment, d, args.version)
        )
        ns, errors, requests, latency = NAMESPACE, "ServerErrors", "Requests", "RequestDuration"
    else:
        tg, lb = args.target_group_arn, args.load_balancer_arn
        dims = {
            "TargetGroup": pulumi.Output.from_input(tg).apply(arn_suffix),
            "LoadBalancer": pulumi.Output.from_input(lb).apply(arn_suffix),
        }
        ns, errors, requests = "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "RequestCount"
        latency = "TargetResponseTime"
    sqs = {"namespace": "AWS/SQS", "statistic": "Maximum", "period": ALARM_PERIOD,
           "evaluation_periods": 1, "comparison_operator": "GreaterThanThreshold"}  # fmt: skip
    return {
        "5xx-rate": {
            "alarm_description": f"{d.name} v{args.version}: more than {ERROR_RATE_PERCENT:g}% "
                                 "of requests answered 5xx over 5 minutes",
            "metric_queries": [
                _query("errors", ns, errors, dims),
                _query("requests", ns, requests, dims),
                aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id="rate", label="5xx %", return_data=True,
                    expression="IF(requests > 0, 100 * FILL(errors, 0) / requests, 0)",
                ),
            ],
            "evaluation_periods": 1,
            "comparison_operator": "GreaterThanThreshold",
            "threshold": ERROR_RATE_PERCENT,
        },
        "p99-latency": {
            "alarm_description": f"{d.name} v{args.version}: p99 latency above "
                                 f"{LATENCY_FRACTION:.0%} of the slowest endpoint's timeout "
                                 "for 10 minutes",
            "namespace": ns, "metric_name": latency, "dimensions": dims,
            "extended_statistic": "p99", "period": ALARM_PERIOD, "evaluation_periods": 2,
            "comparison_operator": "GreaterThanThreshold", "threshold": latency_threshold(d),
        },
        "dlq-not-empty": {
            "alarm_description": f"{d.name} v{args.version}: async requests reached the "
                                 "dead-letter queue",
            "metric_name": "ApproximateNumberOfMessagesVisible",
            "dimensions": {"QueueName": args.dead_letter_queue_name}, "threshold": 0, **sqs,
        },
        "queue-age": {
            "alarm_description": f"{d.name} v{args.version}: the oldest queued async request "
                                 f"waited more than {age_threshold(d):g} s",
            "metric_name": "ApproximateAgeOfOldestMessage",
            "dimensions": {"QueueName": args.queue_name}, "threshold": age_threshold(d), **sqs,
        },
    }  # fmt: skip


class ServiceObservability(pulumi.ComponentResource):
    """A service version's dashboard (CloudWatch and Grafana JSON) and alarms to the topic."""

    dashboard_name: pulumi.Output[str]
    grafana_json: pulumi.Output[str]
    alarm_arns: list[pulumi.Output[str]]

    def __init__(
        self, name: str, args: ServiceObservabilityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        _validate(name, args)
        super().__init__("flowhost:service:Observability", name, None, opts)
        d, env = args.definition, args.tagging.environment
        title = dashboard_name(env, d.name, args.version)
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        inputs: dict[str, Any] = {
            "region": region, "queue": args.queue_name, "dlq": args.dead_letter_queue_name,
            **{f: getattr(args, f) for f in (*ECS_FIELDS, *EKS_FIELDS)
               if getattr(args, f) is not None},
        }  # fmt: skip
        body = pulumi.Output.all(**inputs).apply(
            lambda v: dashboard_body({**v, "environment": env, "version": args.version}, d)
        )
        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=title,
            dashboard_body=body.apply(json.dumps),
            opts=pulumi.ResourceOptions(parent=self),
        )
        alarms = [
            aws.cloudwatch.MetricAlarm(
                f"{name}-{key}",
                alarm_actions=[args.alarm_topic_arn],
                ok_actions=[args.alarm_topic_arn],
                treat_missing_data="notBreaching",
                tags=args.tagging.tags(f"{name}-{key}"),
                opts=pulumi.ResourceOptions(parent=self),
                **spec,
            )
            for key, spec in _alarm_specs(args).items()
        ]
        tags = ["flowhost", f"env:{env}", f"service:{d.name}", f"version:{args.version}"]
        self.dashboard_name = dashboard.dashboard_name
        self.grafana_json = body.apply(lambda b: grafana_dashboard(title, b, tags))
        self.alarm_arns = [alarm.arn for alarm in alarms]
        self.register_outputs({
            "dashboard_name": self.dashboard_name,
            "grafana_json": self.grafana_json,
            "alarm_arns": self.alarm_arns,
        })  # fmt: skip
