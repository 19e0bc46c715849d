"""What the GPU cluster runs for the platform, installed with pulumi-kubernetes.

- the NVIDIA device plugin (advertises ``nvidia.com/gpu`` on the GPU nodes, tolerates
  their taint);
- KEDA (scales GPU services' Deployments on queue depth and in-flight requests, to and
  from zero), with an IRSA role that may read the platform's queues and metrics;
- the cluster autoscaler (adds GPU nodes when GPU pods are pending, removes idle ones,
  so the GPU node group sits at zero), with an IRSA role limited to this cluster's groups;
- the ``flowhost-services`` namespace user stacks deploy GPU services into;
- AWS's Fluent Bit (``logs.py``): that namespace's container logs, EMF lines included,
  to the ``/flowhost/<env>/eks/containers`` log group, with an IRSA role that may only
  write to it.

Charts are pinned; the Kubernetes provider is built from the cluster's kubeconfig.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from flowhost.infra.gpu.cluster import GPU_LABEL, GPU_TAINT_KEY, SYSTEM_LABEL
from flowhost.infra.gpu.logs import (
    FLUENT_BIT_ACCOUNT,
    FLUENT_BIT_CHART,
    container_log_group_name,
    fluent_bit_statements,
    fluent_bit_values,
)
from flowhost.infra.iam import Account, Statement, policy_json
from flowhost.infra.tags import Tagging

__all__ = ["CHARTS", "SERVICES_NAMESPACE", "GpuAddons", "GpuAddonsArgs", "irsa_trust_policy"]

SERVICES_NAMESPACE = "flowhost-services"
KEDA_NAMESPACE = "keda"
# name -> (repository, chart, version, namespace)
CHARTS = {
    "nvidia-device-plugin": (
        "https://nvidia.github.io/k8s-device-plugin",
        "nvidia-device-plugin",
        "0.17.1",
        "kube-system",
    ),
    "keda": ("https://kedacore.github.io/charts", "keda", "2.17.2", KEDA_NAMESPACE),
    "cluster-autoscaler": (
        "https://kubernetes.github.io/autoscaler",
        "cluster-autoscaler",
        "9.46.6",
        "kube-system",
    ),
    "aws-for-fluent-bit": FLUENT_BIT_CHART,
}


@dataclass(frozen=True)
class GpuAddonsArgs:
    cluster_name: str
    kubeconfig: pulumi.Input[str]
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    account: Account
    queue_name_prefix: str
    tagging: Tagging
    log_retention_days: int  # of the container log group
    # The services' permissions boundary, for the Fluent Bit role (whose one grant is
    # inside it). KEDA's and the autoscaler's roles need actions it does not allow.
    permissions_boundary_arn: pulumi.Input[str]


def irsa_trust_policy(provider_arn: str, issuer: str, namespace: str, account: str) -> str:
    """Trust for one Kubernetes service account through the cluster's OIDC provider."""
    host = issuer.removeprefix("https://")
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{host}:sub": f"system:serviceaccount:{namespace}:{account}",
                            f"{host}:aud": "sts.amazonaws.com",
                        }
                    },
                }
            ],
        },
        sort_keys=True,
    )


class GpuAddons(pulumi.ComponentResource):
    """Kubernetes provider, namespaces, IRSA roles, the container log group and the four
    Helm releases."""

    def __init__(
        self, name: str, args: GpuAddonsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:GpuAddons", name, None, opts)
        self._name, self._args = name, args
        provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=args.kubeconfig,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        in_cluster = pulumi.ResourceOptions(parent=self, provider=provider)
        keda_ns = k8s.core.v1.Namespace(
            f"{name}-keda",
            metadata={"name": KEDA_NAMESPACE, "labels": {"app.kubernetes.io/part-of": "flowhost"}},
            opts=in_cluster,
        )
        k8s.core.v1.Namespace(
            f"{name}-services",
            metadata={
                "name": SERVICES_NAMESPACE,
                "labels": {
                    "app.kubernetes.io/part-of": "flowhost",
                    "pod-security.kubernetes.io/enforce": "baseline",
                },
            },
            opts=in_cluster,
        )
        toleration = {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
        self._release(
            "nvidia-device-plugin",
            {"nodeSelector": GPU_LABEL, "tolerations": [toleration]},
            in_cluster,
        )

        keda_role = self._irsa_role(
            "keda-operator",
            KEDA_NAMESPACE,
            "keda-operator",
            [
                Statement(
                    "PlatformQueueDepth",
                    ["sqs:GetQueueAttributes"],
                    [args.account.arn("sqs", f"{args.queue_name_prefix}*")],
                ),
                # CloudWatch metric reads have no resource-level permissions: AWS requires "*".
                Statement("ReadMetrics", ["cloudwatch:GetMetricData"], ["*"]),
            ],
        )
        self._release(
            "keda",
            {
                "nodeSelector": SYSTEM_LABEL,
                "podIdentity": {"aws": {"irsa": {"enabled": True, "roleArn": keda_role.arn}}},
            },
            pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[keda_ns]),
        )

        autoscaler_role = self._irsa_role(
            "cluster-autoscaler",
            "kube-system",
            "cluster-autoscaler",
            self._autoscaler_statements(),
        )
        self._release(
            "cluster-autoscaler",
            {
                "autoDiscovery": {"clusterName": args.cluster_name},
                "awsRegion": args.account.region,
                "nodeSelector": SYSTEM_LABEL,
                "rbac": {
                    "serviceAccount": {
                        "name": "cluster-autoscaler",
                        "annotations": {"eks.amazonaws.com/role-arn": autoscaler_role.arn},
                    }
                },
                "extraArgs": {"scale-down-unneeded-time": "10m", "expander": "least-waste"},
            },
            in_cluster,
        )
        self.container_log_group = self._container_logs(in_cluster)
        self.register_outputs({"container_log_group": self.container_log_group.name})

    def _container_logs(self, in_cluster: pulumi.ResourceOptions) -> aws.cloudwatch.LogGroup:
        """The log group GPU services' container output goes to, and Fluent Bit."""
        args, key = self._args, "container-logs"
        name = container_log_group_name(args.tagging.environment)
        group = aws.cloudwatch.LogGroup(
            f"{self._name}-{key}",
            name=name,
            retention_in_days=args.log_retention_days,
            tags=args.tagging.tags(f"{self._name}-{key}"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        role = self._irsa_role(
            "aws-for-fluent-bit",
            FLUENT_BIT_CHART[3],
            FLUENT_BIT_ACCOUNT,
            fluent_bit_statements(args.account, name),
            boundary=args.permissions_boundary_arn,
        )
        values = fluent_bit_values(
            namespace=SERVICES_NAMESPACE, log_group=name, region=args.account.region,
            role_arn=role.arn,
        )  # fmt: skip
        # Streams go into the group Pulumi made (Fluent Bit may not create groups).
        self._release("aws-for-fluent-bit", values, in_cluster.merge(
            pulumi.ResourceOptions(depends_on=[group])
        ))  # fmt: skip
        return group

    def _release(
        self, key: str, values: Mapping[str, object], opts: pulumi.ResourceOptions
    ) -> k8s.helm.v3.Release:
        repo, chart, version, namespace = CHARTS[key]
        return k8s.helm.v3.Release(
            f"{self._name}-{key}",
            name=key,
            chart=chart,
            version=version,
            namespace=namespace,
            repository_opts={"repo": repo},
            values=dict(values),
            atomic=True,
            cleanup_on_fail=True,
            opts=opts,
        )

    def _irsa_role(
        self,
        key: str,
        namespace: str,
        service_account: str,
        statements: list[Statement],
        boundary: pulumi.Input[str] | None = None,
    ) -> aws.iam.Role:
        args = self._args
        trust = pulumi.Output.all(args.oidc_provider_arn, args.oidc_issuer).apply(
            lambda v: irsa_trust_policy(v[0], v[1], namespace, service_account)
        )
        role = aws.iam.Role(
            f"{self._name}-{key}",
            description=f"IRSA: {namespace}/{service_account}",
            assume_role_policy=trust,
            permissions_boundary=boundary,
            tags=args.tagging.tags(f"{self._name}-{key}"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.iam.RolePolicy(
            f"{self._name}-{key}",
            role=role.id,
            policy=policy_json(statements),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return role

    def _autoscaler_statements(self) -> list[Statement]:
        acct, cluster = self._args.account, self._args.cluster_name
        return [
            Statement(
                "ScaleThisClustersGroups",
                [
                    "autoscaling:SetDesiredCapacity",
                    "autoscaling:TerminateInstanceInAutoScalingGroup",
                ],
                [acct.arn("autoscaling", "autoScalingGroup:*:autoScalingGroupName/eks-*")],
                conditions={
                    "StringEquals": {
                        f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster}": "owned",
                    }
                },
            ),
            Statement(
                "ReadNodeGroups",
                ["eks:DescribeNodegroup"],
                [acct.arn("eks", f"nodegroup/{cluster}/*/*")],
            ),
            # Auto Scaling and EC2 Describe* calls have no resource-level permissions.
            # (Not granted: DescribeScalingActivities and ec2:DescribeImages, which the
            # autoscaler only uses to report failed scale-ups sooner.)
            Statement(
                "DiscoverGroups",
                [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeTags",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplateVersions",
                ],
                ["*"],
            ),
        ]
