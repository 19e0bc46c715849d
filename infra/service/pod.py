"""The pod a ``GpuWorkload`` runs: the serving container and the ADOT collector sidecar.

The collector is the one ECS tasks run (the platform's ``collectorImage``, from its
private pull-through cache; same name), as a native sidecar:
an init container with ``restartPolicy: Always`` (Kubernetes 1.29+), so it is running
before the serving container starts and stops after it. It receives the runtime's OTLP
on 127.0.0.1 (the pod's own network namespace, no port on the Service) and exports traces
to X-Ray with the pod's IRSA role. Its config is ``AOT_CONFIG_CONTENT`` =
``adot_collector_config(environment)``, the function that writes the platform's SSM
parameter, rendered here because pods cannot take an env value from SSM as ECS does.
Both containers run with the same hardened security context. The serving container's
environment includes the platform's Metaflow settings; with a metadata service auth key,
pods get the secret's ARN (``FLOWHOST_METAFLOW_AUTH_SECRET_ARN``, read with the IRSA role)
since Kubernetes cannot fill a variable from Secrets Manager as ECS does. The service's
built environment (``FLOWHOST_ENVIRONMENT_DIGEST``, when it declares one) is unpacked into
``FLOWHOST_ENV_CACHE``, an emptyDir of its own: kept across container restarts in the pod.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

import pulumi
import pulumi_kubernetes as k8s

from flowhost.infra.gpu.cluster import GPU_LABEL, GPU_TAINT_KEY
from flowhost.infra.network import SERVICE_PORT
from flowhost.infra.observability import adot_collector_config
from flowhost.infra.platform_ref import PlatformRef
from flowhost.infra.service.fargate import COLLECTOR
from flowhost.infra.service.package import container_environment
from flowhost.services.definition import ServiceDefinition

__all__ = [
    "COLLECTOR_RESOURCES",
    "CONTAINER_SECURITY",
    "ENV_CACHE",
    "POD_SECURITY",
    "RUN_AS",
    "SERVING",
    "PodArgs",
    "collector_container",
    "container",
    "pod_spec",
]

SERVING = "serve"
RUN_AS = 65532  # an unprivileged uid/gid (distroless "nonroot"); the image's files must be readable
# Paths inside the pod, each a private emptyDir (not this host's /tmp).
SCRATCH, SHM = "/tmp", "/dev/shm"  # noqa: S108
ENV_CACHE = f"{SCRATCH}/flowhost/envs"  # FLOWHOST_ENV_CACHE: where environments are unpacked
# Requests equal limits, as for the serving container, so the pod stays Guaranteed QoS.
COLLECTOR_RESOURCES = {"cpu": "100m", "memory": "128Mi"}
# The Go runtime collects garbage harder near this, well under the memory limit.
_COLLECTOR_GOMEMLIMIT = "100MiB"
POD_SECURITY: k8s.core.v1.PodSecurityContextArgsDict = {
    "run_as_non_root": True,
    "run_as_user": RUN_AS,
    "run_as_group": RUN_AS,
    "fs_group": RUN_AS,
    "seccomp_profile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY: k8s.core.v1.SecurityContextArgsDict = {
    "allow_privilege_escalation": False,
    "read_only_root_filesystem": True,
    "run_as_non_root": True,
    "capabilities": {"drop": ["ALL"]},
}


class PodArgs(Protocol):
    """What the pod is built from (``GpuWorkloadArgs`` has these fields)."""

    @property
    def definition(self) -> ServiceDefinition: ...
    @property
    def platform(self) -> PlatformRef: ...
    @property
    def image(self) -> pulumi.Input[str]: ...
    @property
    def environment(self) -> Mapping[str, pulumi.Input[str]]: ...


def _probe(path: str, *, period: int, timeout: int) -> k8s.core.v1.ProbeArgsDict:
    return {
        "http_get": {"path": path, "port": "http"},
        "period_seconds": period,
        "timeout_seconds": timeout,
    }


def _env(values: Mapping[str, pulumi.Input[str]]) -> list[k8s.core.v1.EnvVarArgsDict]:
    return [{"name": k, "value": values[k]} for k in sorted(values)]


def _serving_env(args: PodArgs) -> pulumi.Output[list[k8s.core.v1.EnvVarArgsDict]]:
    """The serving container's variables with the platform's Metaflow settings."""
    base = {
        "TMPDIR": SCRATCH,
        "XDG_CACHE_HOME": f"{SCRATCH}/.cache",
        "FLOWHOST_ENV_CACHE": ENV_CACHE,
        **args.environment,
    }
    keys = sorted(base)
    platform = args.platform

    def render(values: list[object]) -> list[k8s.core.v1.EnvVarArgsDict]:
        metaflow, secret, *resolved = values
        env = container_environment(
            {k: str(v) for k, v in zip(keys, resolved, strict=True)},
            metaflow if isinstance(metaflow, dict) else {},
            auth_secret_arn=str(secret or ""),
            injects_secrets=False,
        )
        return [{"name": k, "value": env[k]} for k in sorted(env)]

    return pulumi.Output.all(
        pulumi.Output.from_input(platform.metaflow_environment),
        pulumi.Output.from_input(platform.metaflow_auth_secret_arn),
        *(pulumi.Output.from_input(base[k]) for k in keys),
    ).apply(render)


def container(args: PodArgs) -> k8s.core.v1.ContainerArgsDict:
    """The serving container: GPU limits, CPU and memory, probes on SERVICE_PORT."""
    res = args.definition.resources
    amounts = {"cpu": f"{round(res.cpu * 1000)}m", "memory": f"{res.memory}Mi"}
    amounts["nvidia.com/gpu"] = str(res.gpu)
    port: k8s.core.v1.ContainerPortArgsDict = {"name": "http", "container_port": SERVICE_PORT}
    return {
        "name": SERVING,
        "image": args.image,
        "ports": [port],
        "env": _serving_env(args),
        "resources": {"requests": amounts, "limits": amounts},
        "readiness_probe": _probe("/readyz", period=5, timeout=2),
        # /healthz answers while initialize() runs (slow for big models) and fails only
        # once initialize has failed, so no startup probe is needed.
        "liveness_probe": _probe("/healthz", period=10, timeout=5),
        "security_context": CONTAINER_SECURITY,
        "volume_mounts": [
            {"name": "tmp", "mount_path": SCRATCH},
            {"name": "dshm", "mount_path": SHM},
            {"name": "envs", "mount_path": ENV_CACHE},
        ],
    }


def collector_container(
    environment: str, image: pulumi.Input[str], region: pulumi.Input[str] | None = None
) -> k8s.core.v1.ContainerArgsDict:
    """The ADOT collector as a native sidecar (an init container that keeps running).

    ``region`` (the serving container's ``AWS_REGION``) is set explicitly rather than left
    to the EKS pod identity webhook, which also injects it.
    """
    env: dict[str, pulumi.Input[str]] = {
        "AOT_CONFIG_CONTENT": adot_collector_config(environment),
        "GOMEMLIMIT": _COLLECTOR_GOMEMLIMIT,
    }
    if region is not None:
        env["AWS_REGION"] = region
    return {
        "name": COLLECTOR,
        "image": image,
        "restart_policy": "Always",
        "env": _env(env),
        "resources": {"requests": COLLECTOR_RESOURCES, "limits": COLLECTOR_RESOURCES},
        "security_context": CONTAINER_SECURITY,
    }


def pod_spec(args: PodArgs, service_account: str) -> k8s.core.v1.PodSpecArgsDict:
    longest = max((ep.timeout for ep in args.definition.endpoints), default=60.0)
    shm_size = f"{max(64, args.definition.resources.memory // 4)}Mi"
    shm: k8s.core.v1.EmptyDirVolumeSourceArgsDict = {"medium": "Memory", "size_limit": shm_size}
    collector = collector_container(
        args.platform.environment, args.platform.collector_image, args.environment.get("AWS_REGION")
    )
    return {
        "service_account_name": service_account,
        # IRSA injects its own projected token; the app never calls the Kubernetes API.
        "automount_service_account_token": False,
        "node_selector": dict(GPU_LABEL),
        "tolerations": [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
        "security_context": POD_SECURITY,
        # Let requests in flight finish when KEDA scales in (the sidecar outlives them).
        "termination_grace_period_seconds": min(math.ceil(longest) + 30, 1230),
        "init_containers": [collector],
        "containers": [container(args)],
        # PyTorch's DataLoader and NCCL need more shared memory than the default 64Mi.
        "volumes": [
            {"name": "tmp", "empty_dir": {}},
            {"name": "dshm", "empty_dir": shm},
            {"name": "envs", "empty_dir": {}},
        ],
    }
