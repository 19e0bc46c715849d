"""Run ``GpuWorkload`` alone under the recording mock, as a user stack would create it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pulumi
from pulumi.runtime import settings

from flowhost.infra.iam import Statement, policy_json
from flowhost.infra.platform_ref import PlatformRef
from flowhost.infra.service.workload import GpuWorkload, GpuWorkloadArgs
from flowhost.infra.tags import Tagging
from flowhost.services import Resources, Scaling, WebServiceSpec, definition_of, endpoint
from tests.infra.recording import ACCOUNT_ID, REGION, Recorded, RecordingMocks, RecordingMonitor

__all__ = [
    "COLLECTOR_IMAGE",
    "ISSUER",
    "OUTPUTS",
    "WorkloadRun",
    "gpu_args",
    "manifest",
    "run_workload",
]

ISSUER = f"https://oidc.eks.{REGION}.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/flowhost-prod-caption-v3"
# Every output a platform with EKS exports (docs/aws.md), with plausible values.
COLLECTOR_IMAGE = (
    f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/flowhost-prod/aws-observability/"
    "aws-otel-collector:v0.40.0"
)
OUTPUTS: dict[str, Any] = {
    "environment": "prod",
    "vpcId": "vpc-0abc",
    "vpcCidr": "10.0.0.0/16",
    "privateSubnetIds": ["subnet-a", "subnet-b"],
    "serviceSecurityGroupId": "sg-0svc",
    "ecsClusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:cluster/flowhost-prod",
    "ecsClusterName": "flowhost-prod",
    "albArn": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT_ID}:loadbalancer/app/a/1",
    "albListenerArn": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT_ID}:listener/app/a/1/2",
    "activatorTargetGroupArn": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT_ID}:tg/b/3",
    "bucketName": "flowhost-prod-bucket",
    "bucketArn": "arn:aws:s3:::flowhost-prod-bucket",
    "kmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/1234",
    "queueNamePrefix": "flowhost-prod-",
    "servicePermissionsBoundaryArn": f"arn:aws:iam::{ACCOUNT_ID}:policy/flowhost-prod-boundary",
    "serviceLogGroupPrefix": "/flowhost/prod/services",
    "alarmTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:flowhost-prod-alarms",
    "adotConfigParameter": "/flowhost/prod/adot-config",
    "runtimeImage": f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/flowhost-prod-runtime:0.1.0-0a1b",
    "collectorImage": COLLECTOR_IMAGE,
    "eksEnabled": True,
    "eksClusterName": "flowhost-prod",
    "eksKubeconfig": json.dumps({"apiVersion": "v1", "kind": "Config"}),
    "eksOidcProviderArn": f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{ISSUER[8:]}",
    "eksOidcIssuer": ISSUER,
    "eksServicesNamespace": "flowhost-services",
}


class Caption(WebServiceSpec):
    """Captions images on a GPU."""

    name = "caption"
    resources = Resources(cpu=4, memory="16Gi", gpu=1)
    scaling = Scaling(min_instances=0, max_instances=3, idle_timeout="5m", target_concurrency=2)

    @endpoint(description="Caption one image.")
    def describe(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"caption": str(request)}

    @endpoint(description="Caption many images.", timeout=300)
    def batch(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"captions": []}


def gpu_args(**changes: Any) -> GpuWorkloadArgs:
    """Args for version 3 of ``Caption``; call inside a Pulumi program (policy_json is an
    Output). ``changes`` replace fields, e.g. ``platform=...``."""
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:flowhost-prod-caption-v3"
    args = GpuWorkloadArgs(
        definition=definition_of(Caption),
        platform=PlatformRef.from_outputs(OUTPUTS),
        version=3,
        image=f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/flowhost-serve:1.0",
        environment={"FLOWHOST_QUEUE_URL": QUEUE_URL, "FLOWHOST_RUN": "CaptionFlow/12"},
        queue_name="flowhost-prod-caption-v3",
        queue_url=QUEUE_URL,
        policy_json=policy_json(
            [Statement("ConsumeOwnQueue", ["sqs:ReceiveMessage", "sqs:DeleteMessage"], [queue_arn])]
        ),
        tagging=Tagging(environment="prod", owner="ml-team", service="caption"),
    )
    return replace(args, **changes)


@dataclass(frozen=True)
class WorkloadRun:
    resources: list[Recorded]
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, token: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == token]

    def one(self, token: str) -> Recorded:
        (found,) = self.of_type(token)
        return found


def run_workload(
    make: Callable[[], tuple[GpuWorkloadArgs, pulumi.ResourceOptions | None]] | None = None,
    recorded: list[Recorded] | None = None,
) -> WorkloadRun:
    """Create one ``GpuWorkload("caption-v3", ...)`` under a fresh recording mock.
    ``recorded`` receives what was registered even if the program raises."""
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    settings.ROOT.set(None)
    pulumi.runtime.set_all_config({}, [])
    pulumi.runtime.set_mocks(
        mocks, project="user-stack", stack="prod", preview=False, monitor=monitor
    )
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[None]:
        args, opts = make() if make else (gpu_args(), None)
        workload = GpuWorkload("caption-v3", args, opts)
        return pulumi.Output.all(
            deployment_name=workload.deployment_name,
            service_name=workload.service_name,
            role_arn=workload.role_arn,
        ).apply(outputs.update)

    try:
        program()
    finally:
        if recorded is not None:
            recorded.extend(monitor.recorded)
    return WorkloadRun(list(monitor.recorded), outputs)


def _ints(value: Any) -> Any:
    """The mock hands numbers over as doubles (protobuf Struct); the engine sends ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def manifest(r: Recorded) -> dict[str, Any]:
    """The Kubernetes object a recorded resource becomes (its inputs, numbers as ints)."""
    return _ints(r.inputs)
