"""The platform's own alarms, all to the alarm topic: Lambda errors, edge 5xx, database health."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from flowhost.infra.tags import Tagging

__all__ = ["Alarms", "AlarmsArgs"]


@dataclass(frozen=True)
class AlarmsArgs:
    topic_arn: pulumi.Input[str]
    function_names: Mapping[str, pulumi.Input[str]]
    api_id: pulumi.Input[str]
    db_identifier: pulumi.Input[str]
    tagging: Tagging


@dataclass(frozen=True)
class _Alarm:
    key: str
    description: str
    namespace: str
    metric: str
    dimensions: Mapping[str, pulumi.Input[str]]
    statistic: str
    comparison: str
    threshold: float
    periods: int = 1


class Alarms(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: AlarmsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:Alarms", name, None, opts)
        alarms = [
            _Alarm(
                f"{key}-errors",
                f"flowhost {key} Lambda raised errors",
                "AWS/Lambda",
                "Errors",
                {"FunctionName": fn},
                "Sum",
                "GreaterThanOrEqualToThreshold",
                1,
            )
            for key, fn in args.function_names.items()
        ]
        alarms += [
            _Alarm(
                "edge-5xx",
                "flowhost API answered 5xx",
                "AWS/ApiGateway",
                "5xx",
                {"ApiId": args.api_id, "Stage": "$default"},
                "Sum",
                "GreaterThanOrEqualToThreshold",
                5,
            ),
            _Alarm(
                "db-cpu",
                "flowhost state store CPU above 80%",
                "AWS/RDS",
                "CPUUtilization",
                {"DBInstanceIdentifier": args.db_identifier},
                "Average",
                "GreaterThanThreshold",
                80,
                periods=3,
            ),
            _Alarm(
                "db-storage",
                "flowhost state store below 2 GiB free",
                "AWS/RDS",
                "FreeStorageSpace",
                {"DBInstanceIdentifier": args.db_identifier},
                "Minimum",
                "LessThanThreshold",
                2 * 1024**3,
            ),
        ]
        for alarm in alarms:
            aws.cloudwatch.MetricAlarm(
                f"{name}-{alarm.key}",
                alarm_description=alarm.description,
                namespace=alarm.namespace,
                metric_name=alarm.metric,
                dimensions=dict(alarm.dimensions),
                statistic=alarm.statistic,
                comparison_operator=alarm.comparison,
                threshold=alarm.threshold,
                period=300,
                evaluation_periods=alarm.periods,
                treat_missing_data="notBreaching",
                alarm_actions=[args.topic_arn],
                ok_actions=[args.topic_arn],
                tags=args.tagging.tags(f"{name}-{alarm.key}"),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({})
