"""``GpuWorkload``: one version of a GPU service on the platform's EKS cluster: an IRSA
role, a ServiceAccount, a Deployment on the GPU nodes (the serving container and the ADOT
collector as a native sidecar, built in ``pod.py``), a ClusterIP Service, a
PodDisruptionBudget, and a KEDA ScaledObject (``aws-sqs-queue`` read with the KEDA
operator's role through a TriggerAuthentication; ``metrics-api`` summing in-flight requests
over the pods, as the platform runs no Prometheus server). KEDA owns ``spec.replicas``.
A Kubernetes provider passed in ``opts`` is inherited; otherwise one is built from
``platform.eks_kubeconfig``. Details: docs/aws.md, "GPU services".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from pulumi_kubernetes.core.v1 import ServicePortArgsDict

from flowhost.infra.gpu.addons import irsa_trust_policy
from flowhost.infra.network import SERVICE_PORT
from flowhost.infra.platform_ref import OUTPUT_NAMES, PlatformRef
from flowhost.infra.service.pod import RUN_AS, pod_spec
from flowhost.infra.tags import Tagging
from flowhost.services.definition import ServiceDefinition

__all__ = ["IN_FLIGHT_METRIC", "KEDA_API", "RUN_AS", "GpuWorkload", "GpuWorkloadArgs"]

KEDA_API = "keda.sh/v1alpha1"
IN_FLIGHT_METRIC = "flowhost_requests_in_flight"
ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"
_OUTPUTS = ("deployment_name", "service_name", "role_arn")
_HTTP: ServicePortArgsDict = {"name": "http", "port": SERVICE_PORT, "target_port": "http"}
_SQS_HOST = re.compile(r"^(?:sqs\.([a-z0-9-]+)|([a-z0-9-]+)\.queue)\.amazonaws\.com")


@dataclass(frozen=True)
class GpuWorkloadArgs:
    definition: ServiceDefinition
    platform: PlatformRef
    version: int
    image: pulumi.Input[str]
    environment: Mapping[str, pulumi.Input[str]]  # container env (code package, run, queue URL ...)
    queue_name: pulumi.Input[str]
    queue_url: pulumi.Input[str]
    policy_json: pulumi.Input[str]  # least-privilege policy the IRSA role gets
    tagging: Tagging


def validate(args: GpuWorkloadArgs) -> str:
    """The Kubernetes name, ``<service>-v<version>``; ``ValueError`` if the service cannot
    go to EKS (raised before anything is created)."""
    d, platform = args.definition, args.platform
    where, gpu = f"GPU service {d.name!r}", d.resources.gpu
    if gpu < 1:
        raise ValueError(
            f"{where}: resources.gpu must be at least 1 for a GpuWorkload (got {gpu}). "
            "CPU-only services run on ECS."
        )
    missing = [
        o for f, o in OUTPUT_NAMES.items() if f[:4] == "eks_" and getattr(platform, f) is None
    ]
    if not platform.eks_enabled or missing:
        raise ValueError(
            f"{where}: it needs resources.gpu={gpu} but the platform has no EKS cluster "
            f"(flowhost:eksEnabled is {platform.eks_enabled}; missing: {', '.join(missing)}). "
            "Set flowhost:eksEnabled: true in the platform stack's config and run pulumi up "
            "there (and pass eks_enabled=True to PlatformRef.from_stack), or set resources.gpu=0."
        )
    name = f"{d.name}-v{args.version}"
    if args.version < 1 or len(name) > 63:
        raise ValueError(
            f"{where}: version must be 1 or more and the Kubernetes name at most 63 "
            f"characters (got version {args.version}, {name!r}). Use a shorter service name."
        )
    return name


def queue_region(url: str) -> str:
    """The region in ``https://sqs.<region>.amazonaws.com/..`` or ``https://<region>.queue...``."""
    found = _SQS_HOST.match(urlparse(url).hostname or "")
    if found is None:
        raise ValueError(f"SQS queue URL {url!r}: no region in its host. Pass the queue's URL.")
    return found.group(1) or found.group(2)


def _checked_queue(name: str, prefix: str) -> str:
    if not name.startswith(prefix):
        raise ValueError(
            f"GpuWorkload: the queue {name!r} does not start with the platform's queueNamePrefix "
            f"{prefix!r}, so KEDA's role cannot read its depth. Name the queue with that prefix."
        )
    return name


def _inherits_k8s_provider(opts: pulumi.ResourceOptions | None) -> bool:
    providers = (opts.providers if opts else None) or []
    if isinstance(providers, Mapping):
        return "kubernetes" in providers
    given = [*providers, opts.provider if opts else None]
    return any(isinstance(p, k8s.Provider) for p in given)


def scaled_object_spec(args: GpuWorkloadArgs, name: str, ns: pulumi.Input[str]) -> dict[str, Any]:
    """KEDA ScaledObject spec (keda.sh/v1alpha1): SQS depth and in-flight requests."""
    scaling = args.definition.scaling
    target = str(scaling.target_concurrency)
    queue: dict[str, Any] = {
        "type": "aws-sqs-queue",
        "name": "queue",
        "metadata": {
            "queueURL": args.queue_url,
            "queueLength": target,
            "awsRegion": pulumi.Output.from_input(args.queue_url).apply(queue_region),
        },
        "authenticationRef": {"name": name},
    }
    metrics = pulumi.Output.concat(
        "http://", name, ".", ns, f".svc.cluster.local:{SERVICE_PORT}/metrics"
    )
    in_flight = [
        {
            "type": "metrics-api",
            "name": f"in-flight-{ep.name}",
            "metadata": {
                "url": metrics,
                "format": "prometheus",
                "valueLocation": f'{IN_FLIGHT_METRIC}{{endpoint="{ep.name}"}}',
                "targetValue": target,
                "aggregateFromKubeServiceEndpoints": "true",
                "aggregationType": "sum",
            },
        }
        for ep in sorted(args.definition.endpoints, key=lambda ep: ep.name)
    ]
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "pollingInterval": 15,
        "cooldownPeriod": math.ceil(scaling.idle_timeout),
        "minReplicaCount": scaling.min_instances,
        "maxReplicaCount": scaling.max_instances,
        "triggers": [queue, *in_flight],
    }


class GpuWorkload(pulumi.ComponentResource):
    """One GPU service version on EKS: IRSA role, ServiceAccount, Deployment (serving
    container + ADOT collector sidecar), Service, PodDisruptionBudget and a KEDA
    ScaledObject."""

    deployment_name: pulumi.Output[str]
    service_name: pulumi.Output[str]
    role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: GpuWorkloadArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        k8s_name = validate(args)  # before the component or any child exists
        super().__init__("flowhost:service:GpuWorkload", name, None, opts)
        platform, d = args.platform, args.definition
        assert platform.eks_services_namespace is not None  # checked by validate()
        ns: pulumi.Input[str] = platform.eks_services_namespace
        selector = {"flowhost.io/service": d.name, "flowhost.io/version": str(args.version)}
        labels = {"app.kubernetes.io/name": d.name, **selector}
        meta: k8s.meta.v1.ObjectMetaArgsDict = {"name": k8s_name, "namespace": ns, "labels": labels}

        child = pulumi.ResourceOptions(parent=self)
        provider = None
        if not _inherits_k8s_provider(opts):
            provider = k8s.Provider(
                f"{name}-k8s",
                kubeconfig=platform.eks_kubeconfig,
                enable_server_side_apply=True,
                opts=child,
            )
        in_cluster = pulumi.ResourceOptions(parent=self, provider=provider)

        trust = pulumi.Output.all(
            platform.eks_oidc_provider_arn, platform.eks_oidc_issuer, ns
        ).apply(lambda v: irsa_trust_policy(v[0], v[1], v[2], k8s_name))
        role = aws.iam.Role(
            f"{name}-role",
            description=f"IRSA: the pods of GPU service {d.name} v{args.version}",
            assume_role_policy=trust,
            permissions_boundary=platform.permissions_boundary_arn,
            tags=args.tagging.tags(f"{name}-role"),
            opts=child,
        )
        aws.iam.RolePolicy(f"{name}-policy", role=role.id, policy=args.policy_json, opts=child)
        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata={**meta, "annotations": {ROLE_ARN_ANNOTATION: role.arn}},
            automount_service_account_token=False,
            opts=in_cluster,
        )
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            # GPU nodes start from zero: allow time for a node to join and a big image.
            metadata={**meta, "annotations": {"pulumi.com/timeoutSeconds": "1800"}},
            spec={
                "replicas": d.scaling.min_instances,
                "selector": {"match_labels": selector},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec(args, k8s_name)},
            },
            # KEDA (through its HPA) owns the replica count once the Deployment exists.
            opts=in_cluster.merge(
                pulumi.ResourceOptions(ignore_changes=["spec.replicas"], depends_on=[account])
            ),
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta,
            spec={"type": "ClusterIP", "selector": selector, "ports": [_HTTP]},
            opts=in_cluster,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=meta,
            spec={
                "max_unavailable": 1,
                "selector": {"match_labels": selector},
                "unhealthy_pod_eviction_policy": "AlwaysAllow",
            },
            opts=in_cluster,
        )
        auth = k8s.apiextensions.CustomResource(
            f"{name}-keda-auth",
            api_version=KEDA_API,
            kind="TriggerAuthentication",
            metadata=meta,
            spec={"podIdentity": {"provider": "aws", "identityOwner": "keda"}},
            opts=in_cluster,
        )
        queue = pulumi.Output.all(args.queue_name, platform.queue_name_prefix).apply(
            lambda v: _checked_queue(v[0], v[1])
        )
        k8s.apiextensions.CustomResource(
            f"{name}-scaler",
            api_version=KEDA_API,
            kind="ScaledObject",
            metadata={**meta, "annotations": {"flowhost.io/queue": queue}},
            spec=scaled_object_spec(args, k8s_name, ns),
            opts=in_cluster.merge(pulumi.ResourceOptions(depends_on=[deployment, auth])),
        )

        self.deployment_name = deployment.metadata.apply(lambda m: m.name or k8s_name)
        self.service_name = service.metadata.apply(lambda m: m.name or k8s_name)
        self.role_arn = role.arn
        self.register_outputs({k: getattr(self, k) for k in _OUTPUTS})
