"""The optional EKS cluster for GPU services.

A private API endpoint (public only for the CIDRs the config lists), secrets encrypted
with the platform key, control-plane logs kept for the stack's retention, access
entries (API authentication mode), an OIDC provider for IRSA, a small system node group
(CoreDNS, KEDA, the autoscaler) and a GPU node group that sits at zero nodes, tainted
so only GPU pods land on it, with instance types from the stack's allow-list.
Cluster add-ons are installed by :mod:`flowhost.infra.gpu.addons`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from flowhost.infra.iam import Account, assume_role_policy
from flowhost.infra.tags import Tagging

__all__ = [
    "GPU_LABEL",
    "GPU_TAINT",
    "GPU_TAINT_KEY",
    "SYSTEM_LABEL",
    "GpuCluster",
    "GpuClusterArgs",
    "kubeconfig",
]

GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT = aws.eks.NodeGroupTaintArgs(key=GPU_TAINT_KEY, value="true", effect="NO_SCHEDULE")
GPU_LABEL = {"flowhost.io/pool": "gpu", "nvidia.com/gpu.present": "true"}
SYSTEM_LABEL = {"flowhost.io/pool": "system"}
CLUSTER_POLICIES = ("AmazonEKSClusterPolicy",)
NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
)


@dataclass(frozen=True)
class GpuClusterArgs:
    cluster_name: str
    version: str
    account: Account
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    subnet_ids: Sequence[pulumi.Input[str]]
    api_access_cidrs: Sequence[str]
    kms_key_arn: pulumi.Input[str]
    gpu_instance_types: Sequence[str]
    gpu_max_nodes: int
    system_instance_type: str
    log_retention_days: int
    tagging: Tagging


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates with ``aws eks get-token`` (no static credentials)."""
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region],
        }
    }
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster_name,
                    "cluster": {"server": endpoint, "certificate-authority-data": ca_data},
                }
            ],
            "contexts": [
                {"name": cluster_name, "context": {"cluster": cluster_name, "user": "aws"}}
            ],
            "current-context": cluster_name,
            "users": [{"name": "aws", "user": user}],
        },
        sort_keys=True,
    )


def _issuer(identities: Sequence[aws.eks.outputs.ClusterIdentity]) -> str:
    oidcs = identities[0].oidcs if identities else None
    return (oidcs[0].issuer or "") if oidcs else ""


class GpuCluster(pulumi.ComponentResource):
    """EKS cluster, its roles, OIDC provider, a system node group and the GPU node group."""

    def __init__(
        self, name: str, args: GpuClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:GpuCluster", name, None, opts)
        self._tagging = args.tagging
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tagging.tags
        acct = args.account

        cluster_role = self._role(f"{name}-cluster-role", "eks.amazonaws.com", CLUSTER_POLICIES)
        node_role = self._role(f"{name}-node-role", "ec2.amazonaws.com", NODE_POLICIES)
        self.node_role = node_role  # the platform adds the image-cache pull grant to it
        api_sg = aws.ec2.SecurityGroup(
            f"{name}-api",
            vpc_id=args.vpc_id,
            description="EKS API: HTTPS from inside the VPC",
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_blocks": [args.vpc_cidr],
                    "description": "kubectl and Pulumi from the VPC",
                }
            ],
            tags=tags(f"{name}-api"),
            opts=child,
        )
        logs = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/eks/{args.cluster_name}/cluster",
            retention_in_days=args.log_retention_days,
            tags=tags(f"{name}-logs"),
            opts=child,
        )
        public = bool(args.api_access_cidrs)
        self.cluster = aws.eks.Cluster(
            f"{name}-cluster",
            name=args.cluster_name,
            version=args.version,
            role_arn=cluster_role.arn,
            vpc_config={
                "subnet_ids": list(args.subnet_ids),
                "security_group_ids": [api_sg.id],
                "endpoint_private_access": True,
                "endpoint_public_access": public,
                "public_access_cidrs": list(args.api_access_cidrs) if public else None,
            },
            access_config={
                "authentication_mode": "API",
                "bootstrap_cluster_creator_admin_permissions": True,
            },
            encryption_config={"provider": {"key_arn": args.kms_key_arn}, "resources": ["secrets"]},
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            tags=tags(args.cluster_name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs]),
        )
        issuer = self.cluster.identities.apply(_issuer)
        self.oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=issuer,
            client_id_lists=["sts.amazonaws.com"],
            tags=tags(f"{name}-oidc"),
            opts=child,
        )
        self.oidc_issuer = issuer

        common_nodes = {
            "cluster_name": self.cluster.name,
            "node_role_arn": node_role.arn,
            "subnet_ids": list(args.subnet_ids),
        }
        aws.eks.NodeGroup(
            f"{name}-system",
            **common_nodes,
            ami_type="AL2023_x86_64_STANDARD",
            capacity_type="ON_DEMAND",
            instance_types=[args.system_instance_type],
            scaling_config={"min_size": 1, "desired_size": 1, "max_size": 2},
            labels=SYSTEM_LABEL,
            tags=tags(f"{name}-system"),
            opts=child,
        )
        autoscaler_tags = {
            "k8s.io/cluster-autoscaler/enabled": "true",
            f"k8s.io/cluster-autoscaler/{args.cluster_name}": "owned",
            "k8s.io/cluster-autoscaler/node-template/label/flowhost.io/pool": "gpu",
            "k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu": "true:NoSchedule",
        }
        self.gpu_nodes = aws.eks.NodeGroup(
            f"{name}-gpu",
            **common_nodes,
            ami_type="AL2023_x86_64_NVIDIA",
            capacity_type="ON_DEMAND",
            instance_types=list(args.gpu_instance_types),
            scaling_config={"min_size": 0, "desired_size": 0, "max_size": args.gpu_max_nodes},
            taints=[GPU_TAINT],
            labels=GPU_LABEL,
            tags=tags(f"{name}-gpu", **autoscaler_tags),
            # The cluster autoscaler owns the node count once the group exists.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["scalingConfig.desiredSize"]),
        )
        region = acct.region
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                self.cluster.name,
                self.cluster.endpoint,
                self.cluster.certificate_authority.apply(lambda ca: ca.data or ""),
                region,
            ).apply(lambda v: kubeconfig(v[0], v[1], v[2], v[3]))
        )
        self.cluster_name = self.cluster.name
        self.register_outputs(
            {"cluster_name": self.cluster.name, "oidc_provider_arn": self.oidc_provider.arn}
        )

    def _role(self, name: str, service: str, managed: Sequence[str]) -> aws.iam.Role:
        """A role for an AWS service with AWS-managed EKS policies attached."""
        role = aws.iam.Role(
            name,
            assume_role_policy=assume_role_policy(service),
            tags=self._tagging.tags(name),
            opts=pulumi.ResourceOptions(parent=self),
        )
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition
        for policy in managed:
            aws.iam.RolePolicyAttachment(
                f"{name}-{policy.lower().replace('_', '-')}",
                role=role.name,
                policy_arn=pulumi.Output.concat("arn:", partition, ":iam::aws:policy/", policy),
                opts=pulumi.ResourceOptions(parent=self),
            )
        return role
