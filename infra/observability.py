"""Alerting and tracing: the alarm topic, X-Ray sampling and group, the ADOT collector config.

Lambdas trace natively (tracing mode Active). Service instances run the ADOT collector
as a sidecar (added by user stacks); it reads its configuration from the SSM parameter
created here and exports traces to X-Ray and metrics as CloudWatch EMF.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from flowhost.infra.tags import Tagging

__all__ = ["Observability", "ObservabilityArgs", "adot_collector_config"]


def adot_collector_config(environment: str) -> str:
    """The ADOT collector's config: OTLP in, X-Ray traces and EMF metrics out."""
    return "\n".join(
        [
            "receivers:",
            "  otlp:",
            "    protocols:",
            "      grpc:",
            "        endpoint: 127.0.0.1:4317",
            "      http:",
            "        endpoint: 127.0.0.1:4318",
            "processors:",
            "  batch: {}",
            "  resource:",
            "    attributes:",
            "      - key: flowhost.environment",
            f"        value: {environment}",
            "        action: upsert",
            "exporters:",
            "  awsxray:",
            "    indexed_attributes: [flowhost.environment, flowhost.service, flowhost.version]",
            "  awsemf:",
            "    namespace: flowhost/services",
            f"    log_group_name: /flowhost/{environment}/metrics",
            "service:",
            "  pipelines:",
            "    traces:",
            "      receivers: [otlp]",
            "      processors: [resource, batch]",
            "      exporters: [awsxray]",
            "    metrics:",
            "      receivers: [otlp]",
            "      processors: [resource, batch]",
            "      exporters: [awsemf]",
            "",
        ]
    )


@dataclass(frozen=True)
class ObservabilityArgs:
    kms_key_arn: pulumi.Input[str]
    alert_email: str
    tracing_sample_rate: float
    log_retention_days: int
    tagging: Tagging


class Observability(pulumi.ComponentResource):
    """SNS alarm topic (+ email), X-Ray sampling rule and group, ADOT config parameter."""

    def __init__(
        self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:Observability", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tagging.tags
        env = args.tagging.environment
        self.topic = aws.sns.Topic(
            f"{name}-alarms",
            kms_master_key_id=args.kms_key_arn,
            tags=tags(f"{name}-alarms"),
            opts=child,
        )
        aws.sns.TopicSubscription(
            f"{name}-alarms-email",
            topic=self.topic.arn,
            protocol="email",
            endpoint=args.alert_email,
            opts=child,
        )
        aws.xray.SamplingRule(
            f"{name}-sampling",
            rule_name=f"flowhost-{env}"[:32],
            priority=1000,
            version=1,
            reservoir_size=1,
            fixed_rate=args.tracing_sample_rate,
            host="*",
            http_method="*",
            url_path="*",
            service_name=f"flowhost-{env}-*",
            service_type="*",
            resource_arn="*",
            tags=tags(f"{name}-sampling"),
            opts=child,
        )
        aws.xray.Group(
            f"{name}-traces",
            group_name=f"flowhost-{env}",
            filter_expression=f'annotation.flowhost_environment = "{env}"',
            insights_configuration={"insights_enabled": True, "notifications_enabled": False},
            tags=tags(f"{name}-traces"),
            opts=child,
        )
        aws.cloudwatch.LogGroup(
            f"{name}-metrics",
            name=f"/flowhost/{env}/metrics",
            retention_in_days=args.log_retention_days,
            tags=tags(f"{name}-metrics"),
            opts=child,
        )
        self.adot_config = aws.ssm.Parameter(
            f"{name}-adot-config",
            name=f"/flowhost/{env}/adot-collector-config",
            type="String",
            description="ADOT collector config for service sidecars (AOT_CONFIG_CONTENT)",
            value=adot_collector_config(env),
            tags=tags(f"{name}-adot-config"),
            opts=child,
        )
        self.topic_arn = self.topic.arn
        self.register_outputs({"topic_arn": self.topic.arn, "adot_config": self.adot_config.arn})
