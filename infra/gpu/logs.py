"""Container logs of GPU services to CloudWatch Logs: AWS's Fluent Bit DaemonSet.

Pods on EKS have no awslogs driver, so nothing carries their stdout to CloudWatch Logs:
no logs, and none of the runtime's EMF metric lines (CloudWatch Logs extracts EMF from any
event that reaches it). ``GpuAddons`` installs the ``aws-for-fluent-bit`` chart on the GPU
nodes, where services run. It tails only the services namespace's container logs and
sends each raw line (``log_key log``, so an EMF line arrives as the event itself) to
``/flowhost/<env>/eks/containers``, one log stream per pod, with its own IRSA role.

Pulumi creates the log group (with the platform's retention), so Fluent Bit neither
creates groups nor sets retention, and its role needs only ``logs:CreateLogStream`` and
``logs:PutLogEvents`` on that group: the C ``cloudwatch_logs`` output never calls
``DescribeLogStreams`` (the retired Go ``cloudwatch`` plugin did). Both actions are inside
the service permissions boundary's ``/flowhost/<env>/*`` log groups.
"""

from __future__ import annotations

from typing import Any

import pulumi

from flowhost.infra.gpu.cluster import GPU_LABEL, GPU_TAINT_KEY
from flowhost.infra.iam import Account, Statement

__all__ = [
    "FLUENT_BIT_ACCOUNT",
    "FLUENT_BIT_CHART",
    "FLUENT_BIT_NAMESPACE",
    "container_log_group_name",
    "fluent_bit_statements",
    "fluent_bit_values",
]

FLUENT_BIT_NAMESPACE = "kube-system"
FLUENT_BIT_ACCOUNT = "aws-for-fluent-bit"
# (repository, chart, version, namespace), as addons.CHARTS.
FLUENT_BIT_CHART = (
    "https://aws.github.io/eks-charts",
    "aws-for-fluent-bit",
    "0.1.34",
    FLUENT_BIT_NAMESPACE,
)


def container_log_group_name(environment: str) -> str:
    """Inside ``service_log_group_prefix(environment)``, the boundary's log groups."""
    return f"/flowhost/{environment}/eks/containers"


def fluent_bit_statements(account: Account, log_group: str) -> list[Statement]:
    """Write streams of the one log group; nothing else (no group creation, no reads)."""
    return [
        Statement(
            "WriteContainerLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [account.arn("logs", f"log-group:{log_group}:*")],
        )
    ]


def fluent_bit_values(
    *, namespace: str, log_group: str, region: pulumi.Input[str], role_arn: pulumi.Input[str]
) -> dict[str, Any]:
    """The chart's values: one ``cloudwatch_logs`` output, every other output off."""
    toleration = {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
    return {
        "input": {
            # <pod>_<namespace>_<container>-<id>.log: this namespace's containers only.
            "path": f"/var/log/containers/*_{namespace}_*.log",
        },
        # The kubernetes filter adds the pod name the stream is named after; the record
        # keeps "log" untouched (nothing merged into it).
        "filter": {"mergeLog": "Off", "keepLog": "On"},
        "cloudWatchLogs": {
            "enabled": True,
            "match": "kube.*",
            "region": region,
            "logGroupName": log_group,
            "logStreamTemplate": "$kubernetes['pod_name']",
            # Used only when a record has no pod name (the template fails).
            "logStreamPrefix": "unmatched-",
            "logKey": "log",
            "autoCreateGroup": False,
        },
        "cloudWatch": {"enabled": False},
        "firehose": {"enabled": False},
        "kinesis": {"enabled": False},
        "elasticsearch": {"enabled": False},
        "serviceAccount": {
            "create": True,
            "name": FLUENT_BIT_ACCOUNT,
            "annotations": {"eks.amazonaws.com/role-arn": role_arn},
        },
        # Services run on the GPU nodes only.
        "nodeSelector": dict(GPU_LABEL),
        "tolerations": [toleration],
    }
