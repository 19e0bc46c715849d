"""Run a user-stack program of ServiceSpecs under the recording mock, with fake platform
outputs (what a StackReference to the platform stack would give)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.runtime import settings
from pulumi.runtime.mocks import MockResourceArgs

from flowhost.infra import PlatformRef
from tests.infra.recording import (
    ACCOUNT_ID,
    ELB,
    IMAGE_DIGEST,
    REGION,
    REGISTRY,
    PlatformRun,
    RecordingMocks,
    RecordingMonitor,
)

ENV = "dev"
ALB_ARN = f"{ELB}:loadbalancer/app/flowhost-dev-alb/50dc6c495c0c9188"
LISTENER_ARN = f"{ELB}:listener/app/flowhost-dev-alb/50dc6c495c0c9188/f2f7dc8efc522ab2"
ACTIVATOR_TG = f"{ELB}:targetgroup/flowhost-dev-activator/73e2d6bc24d8a067"
BUCKET = "flowhost-dev-data-0004"
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BOUNDARY = f"arn:aws:iam::{ACCOUNT_ID}:policy/flowhost-dev-boundary-policy"
# The platform's runtimeImage: its ECR repository, content tag, pushed digest.
RUNTIME_REPOSITORY = "flowhost-dev-runtime"
RUNTIME_IMAGE = f"{REGISTRY}/{RUNTIME_REPOSITORY}:0.1.0-0123456789ab@{IMAGE_DIGEST}"
# The platform's collectorImage: the ADOT collector through its pull-through cache.
COLLECTOR_REPOSITORY = "flowhost-dev/aws-observability/aws-otel-collector"
COLLECTOR_IMAGE = f"{REGISTRY}/{COLLECTOR_REPOSITORY}:v0.40.0"
PLATFORM_OUTPUTS: dict[str, Any] = {
    "environment": ENV,
    "vpcId": "vpc-0abc",
    "vpcCidr": "10.40.0.0/16",
    "privateSubnetIds": ["subnet-a", "subnet-b"],
    "serviceSecurityGroupId": "sg-services",
    "ecsClusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:cluster/flowhost-dev",
    "ecsClusterName": "flowhost-dev",
    "albArn": ALB_ARN,
    "albListenerArn": LISTENER_ARN,
    "activatorTargetGroupArn": ACTIVATOR_TG,
    "bucketName": BUCKET,
    "bucketArn": f"arn:aws:s3:::{BUCKET}",
    "kmsKeyArn": KMS_KEY,
    "queueNamePrefix": "flowhost-dev-",
    "servicePermissionsBoundaryArn": BOUNDARY,
    "serviceLogGroupPrefix": "/flowhost/dev/",
    "alarmTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:flowhost-dev-alarms",
    "adotConfigParameter": "/flowhost/dev/adot-collector-config",
    "runtimeImage": RUNTIME_IMAGE,
    "collectorImage": COLLECTOR_IMAGE,
    "apiUrl": "https://abc123.execute-api.us-east-1.amazonaws.com",
    "eksEnabled": False,
}
EKS_OUTPUTS: dict[str, Any] = {
    "eksEnabled": True,
    "eksClusterName": "flowhost-dev-gpu",
    "eksKubeconfig": "{}",
    "eksOidcProviderArn": f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/oidc.eks.{REGION}"
    ".amazonaws.com/id/ABC",
    "eksOidcIssuer": f"https://oidc.eks.{REGION}.amazonaws.com/id/ABC",
    "eksServicesNamespace": "flowhost-services",
}


class ServiceMocks(RecordingMocks):
    """The recording mock, plus what SQS answers for a queue: its URL."""

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        mock_id, state = super().new_resource(args)
        if args.typ == "aws:sqs/queue:Queue":
            name = state.get("name", args.name)
            state = {
                **state,
                "url": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{name}",
                "arn": f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}",
            }
        return mock_id, state


def platform(*, eks: bool = False) -> PlatformRef:
    return PlatformRef.from_outputs({**PLATFORM_OUTPUTS, **(EKS_OUTPUTS if eks else {})})


def run_services(build: Callable[[], dict[str, Any]]) -> PlatformRun:
    """Run ``build`` as a Pulumi program; its returned mapping is resolved as outputs."""
    mocks = ServiceMocks()
    monitor = RecordingMonitor(mocks)
    settings.ROOT.set(None)
    pulumi.runtime.set_all_config({}, [])
    pulumi.runtime.set_mocks(mocks, project="user-stack", stack=ENV, preview=False, monitor=monitor)
    resolved: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[None]:
        outputs = build()
        return pulumi.Output.all(
            **{k: pulumi.Output.from_input(v) for k, v in outputs.items()}
        ).apply(resolved.update)

    program()
    return PlatformRun(list(monitor.recorded), resolved)
