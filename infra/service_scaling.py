"""Application Auto Scaling for an ECS service version.

The count stays between ``min_instances`` (zero allowed) and ``max_instances``:

- target tracking on ``ALBRequestCountPerTarget`` (requests per task per minute) for
  synchronous traffic; its resource label is ``app/<alb>/<id>/targetgroup/<tg>/<id>``;
- step scaling on the async backlog: an alarm on the queue's
  ``ApproximateNumberOfMessagesVisible`` adds tasks in steps while messages wait.

Scale to zero after ``idle_timeout`` and waking from zero belong to the platform's scaler
and activator (they also park and wake the routes), not to these policies.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from flowhost.infra.tags import Tagging

__all__ = ["BACKLOG_STEPS", "ScalingArgs", "ServiceScaling", "create_scaling", "resource_label"]

# (messages visible above the alarm threshold from, to) -> tasks to add
BACKLOG_STEPS = ((0, 50, 1), (50, 500, 2), (500, None, 4))


def resource_label(load_balancer_arn: str, target_group_arn: str) -> str:
    """``app/<alb>/<id>/targetgroup/<tg>/<id>`` from the two ARNs."""
    balancer = load_balancer_arn.split(":loadbalancer/", 1)[-1]
    group = target_group_arn.rsplit(":", 1)[-1]
    return f"{balancer}/{group}"


@dataclass(frozen=True)
class ScalingArgs:
    service: str
    min_instances: int
    max_instances: int
    requests_per_target_per_minute: int
    cluster_name: pulumi.Input[str]
    ecs_service_name: pulumi.Input[str]
    load_balancer_arn: pulumi.Input[str]
    target_group_arn: pulumi.Input[str]
    queue_name: pulumi.Input[str]
    tagging: Tagging


@dataclass(frozen=True)
class ServiceScaling:
    target: aws.appautoscaling.Target
    requests: aws.appautoscaling.Policy
    backlog: aws.appautoscaling.Policy
    backlog_alarm: aws.cloudwatch.MetricAlarm


def create_scaling(
    name: str, args: ScalingArgs, service: pulumi.Resource, parent: pulumi.Resource
) -> ServiceScaling:
    child = pulumi.ResourceOptions(parent=parent)
    target = aws.appautoscaling.Target(
        f"{name}-scaling",
        service_namespace="ecs",
        scalable_dimension="ecs:service:DesiredCount",
        resource_id=pulumi.Output.concat("service/", args.cluster_name, "/", args.ecs_service_name),
        min_capacity=args.min_instances,
        max_capacity=args.max_instances,
        tags=args.tagging.tags(f"{name}-scaling"),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[service]),
    )
    label = pulumi.Output.all(
        pulumi.Output.from_input(args.load_balancer_arn),
        pulumi.Output.from_input(args.target_group_arn),
    ).apply(lambda arns: resource_label(arns[0], arns[1]))
    requests = aws.appautoscaling.Policy(
        f"{name}-requests",
        policy_type="TargetTrackingScaling",
        service_namespace=target.service_namespace,
        scalable_dimension=target.scalable_dimension,
        resource_id=target.resource_id,
        target_tracking_scaling_policy_configuration={
            "predefined_metric_specification": {
                "predefined_metric_type": "ALBRequestCountPerTarget",
                "resource_label": label,
            },
            "target_value": float(args.requests_per_target_per_minute),
            "scale_in_cooldown": 300,
            "scale_out_cooldown": 60,
        },
        opts=child,
    )
    backlog = aws.appautoscaling.Policy(
        f"{name}-backlog",
        policy_type="StepScaling",
        service_namespace=target.service_namespace,
        scalable_dimension=target.scalable_dimension,
        resource_id=target.resource_id,
        step_scaling_policy_configuration={
            "adjustment_type": "ChangeInCapacity",
            "metric_aggregation_type": "Maximum",
            "cooldown": 60,
            "step_adjustments": [
                {
                    "metric_interval_lower_bound": str(lower),
                    "metric_interval_upper_bound": None if upper is None else str(upper),
                    "scaling_adjustment": add,
                }
                for lower, upper, add in BACKLOG_STEPS
            ],
        },
        opts=child,
    )
    alarm = aws.cloudwatch.MetricAlarm(
        f"{name}-backlog-alarm",
        alarm_description=f"flowhost {args.service}: async requests waiting; add tasks",
        namespace="AWS/SQS",
        metric_name="ApproximateNumberOfMessagesVisible",
        dimensions={"QueueName": args.queue_name},
        statistic="Maximum",
        period=60,
        evaluation_periods=1,
        threshold=1,
        comparison_operator="GreaterThanOrEqualToThreshold",
        treat_missing_data="notBreaching",
        alarm_actions=[backlog.arn],
        tags=args.tagging.tags(f"{name}-backlog-alarm"),
        opts=child,
    )
    return ServiceScaling(target, requests, backlog, alarm)
