"""Component tier: ``GpuWorkload`` under the recording mock.

- exact children, their names and the Kubernetes provider they use;
- every built-in Kubernetes object validates with kubernetes-validate, strict, for the
  platform's Kubernetes version; KEDA's ScaledObject and TriggerAuthentication are CRDs
  kubernetes-validate does not know, so they are checked against ``KEDA_SCHEMAS``: a small,
  closed JSON schema of the fields used here, written from KEDA's CRD
  (``config/crd/bases/keda.sh_scaledobjects.yaml``) and its scaler docs (v2.17);
- the IRSA trust policy and the inline policy pass parliament (nothing above LOW);
- GPU limits, node selector, toleration, probes, security context, KEDA triggers;
- the errors raised before anything is created.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import jsonschema
import kubernetes_validate
import pulumi
import pulumi_kubernetes as k8s
import pytest

from flowhost.infra.config import load_config
from flowhost.infra.gpu.cluster import GPU_LABEL, GPU_TAINT_KEY
from flowhost.infra.network import SERVICE_PORT
from flowhost.infra.platform_ref import PlatformRef
from flowhost.infra.service.workload import GpuWorkload, queue_region
from flowhost.services import Resources, definition_of
from tests.infra.gpu_services.harness import (
    ISSUER,
    OUTPUTS,
    Caption,
    WorkloadRun,
    gpu_args,
    manifest,
    run_workload,
)
from tests.infra.recording import Recorded, stack_config
from tests.infra.test_documents import findings_above_low

NAME = "caption-v3"
NAMESPACE = "flowhost-services"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
CHILDREN = {
    "aws:iam/role:Role": [f"{NAME}-role"],
    "aws:iam/rolePolicy:RolePolicy": [f"{NAME}-policy"],
    "pulumi:providers:kubernetes": [f"{NAME}-k8s"],
    "kubernetes:core/v1:ServiceAccount": [f"{NAME}-sa"],
    DEPLOYMENT: [f"{NAME}-deployment"],
    "kubernetes:core/v1:Service": [f"{NAME}-service"],
    "kubernetes:policy/v1:PodDisruptionBudget": [f"{NAME}-pdb"],
    "kubernetes:keda.sh/v1alpha1:TriggerAuthentication": [f"{NAME}-keda-auth"],
    SCALED_OBJECT: [f"{NAME}-scaler"],
}

_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_INT32 = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "namespace": {"type": "string"},
        "labels": _STR_MAP,
        "annotations": _STR_MAP,
    },
    "additionalProperties": False,
}


def _crd(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        "additionalProperties": False,
    }


KEDA_SCHEMAS = {
    "ScaledObject": _crd(
        "ScaledObject",
        {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
                "pollingInterval": _INT32,
                "cooldownPeriod": _INT32,
                "minReplicaCount": _INT32,
                "maxReplicaCount": _INT32,
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"enum": ["aws-sqs-queue", "metrics-api"]},
                            "name": {"type": "string"},
                            "metadata": _STR_MAP,
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "kind": {
                                        "enum": [
                                            "TriggerAuthentication",
                                            "ClusterTriggerAuthentication",
                                        ]
                                    },
                                },
                                "additionalProperties": False,
                            },
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
    ),
    "TriggerAuthentication": _crd(
        "TriggerAuthentication",
        {
            "type": "object",
            "properties": {
                "podIdentity": {
                    "type": "object",
                    "required": ["provider"],
                    "properties": {
                        "provider": {"enum": ["none", "azure-workload", "gcp", "aws"]},
                        "identityOwner": {"enum": ["keda", "workload"]},
                        "roleArn": {"type": "string"},
                    },
                    "additionalProperties": False,
                }
            },
            "additionalProperties": False,
        },
    ),
}
# Metadata keys each scaler reads (KEDA 2.17 docs), so a typo fails here, not in the cluster.
TRIGGER_KEYS = {
    "aws-sqs-queue": {"queueURL", "queueLength", "awsRegion", "activationQueueLength"},
    "metrics-api": {
        "url",
        "format",
        "valueLocation",
        "targetValue",
        "activationTargetValue",
        "aggregateFromKubeServiceEndpoints",
        "aggregationType",
    },
}


@pytest.fixture(scope="module")
def run() -> WorkloadRun:
    return run_workload()


@pytest.fixture(scope="module")
def k8s_version() -> str:
    return load_config(stack_config("prod"), "prod").eks_version


def pod(run: WorkloadRun) -> dict[str, Any]:
    return manifest(run.one(DEPLOYMENT))["spec"]["template"]["spec"]


def test_exact_children(run: WorkloadRun) -> None:
    (component,) = [r for r in run.resources if not r.custom]
    assert (component.type, component.name) == ("flowhost:service:GpuWorkload", NAME)
    children = {}
    for r in run.resources:
        if r.custom:
            children.setdefault(r.type, []).append(r.name)
            assert r.parent == component.urn, r.name
    assert children == CHILDREN
    provider = run.one("pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == OUTPUTS["eksKubeconfig"]
    for r in run.resources:
        if r.type.startswith("kubernetes:"):
            assert r.provider.startswith(provider.urn + "::"), r.name
    assert run.outputs == {
        "deployment_name": NAME,
        "service_name": NAME,
        "role_arn": f"arn:aws:iam::123456789012:role/{NAME}-role",
    }


def test_a_given_provider_is_used_instead_of_building_one() -> None:
    def make() -> tuple[Any, pulumi.ResourceOptions]:
        shared = k8s.Provider("shared", kubeconfig="{}")
        return gpu_args(), pulumi.ResourceOptions(providers=[shared])

    run = run_workload(make)
    (provider,) = run.of_type("pulumi:providers:kubernetes")
    assert provider.name == "shared"
    for r in run.resources:
        if r.type.startswith("kubernetes:"):
            assert r.provider.startswith(provider.urn + "::"), r.name


def test_kubernetes_objects_validate_strictly(run: WorkloadRun, k8s_version: str) -> None:
    builtin = [
        r for r in run.resources if r.type.startswith("kubernetes:") and "keda.sh" not in r.type
    ]
    assert len(builtin) == 4
    for r in builtin:
        obj = manifest(r)
        assert obj["metadata"]["name"] == NAME
        assert obj["metadata"]["namespace"] == NAMESPACE
        kubernetes_validate.validate(obj, k8s_version, strict=True)  # raises if invalid


def test_keda_objects_match_the_crd_fields(run: WorkloadRun) -> None:
    keda = [r for r in run.resources if "keda.sh" in r.type]
    assert sorted(manifest(r)["kind"] for r in keda) == ["ScaledObject", "TriggerAuthentication"]
    for r in keda:
        obj = manifest(r)
        jsonschema.validate(obj, KEDA_SCHEMAS[obj["kind"]])
    for trigger in manifest(run.one(SCALED_OBJECT))["spec"]["triggers"]:
        assert set(trigger["metadata"]) <= TRIGGER_KEYS[trigger["type"]], trigger["name"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "minReplicaCount"), "0"),
        (("spec", "triggers", 0, "metadata", "queueLength"), 2),
        (("spec", "triggers", 0, "metadta"), {}),
        (("spec", "scaleTargetRef", "nmae"), "x"),
    ],
)
def test_the_keda_schema_can_fail(run: WorkloadRun, path: tuple[Any, ...], value: Any) -> None:
    obj = manifest(run.one(SCALED_OBJECT))
    node = obj
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(obj, KEDA_SCHEMAS["ScaledObject"])


def test_gpu_placement_and_resources(run: WorkloadRun) -> None:
    spec = pod(run)
    assert spec["nodeSelector"] == GPU_LABEL
    assert spec["tolerations"] == [
        {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
    ]
    (container,) = spec["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "4000m", "memory": "16384Mi", "nvidia.com/gpu": "1"},
        "limits": {"cpu": "4000m", "memory": "16384Mi", "nvidia.com/gpu": "1"},
    }
    assert container["ports"] == [{"name": "http", "containerPort": SERVICE_PORT}]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["FLOWHOST_RUN"] == "CaptionFlow/12"
    assert env["XDG_CACHE_HOME"].startswith("/tmp/")


def test_probes_on_the_service_port(run: WorkloadRun) -> None:
    (container,) = pod(run)["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    service = manifest(run.one("kubernetes:core/v1:Service"))["spec"]
    assert service["type"] == "ClusterIP"
    assert service["ports"] == [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}]


def test_pods_run_unprivileged(run: WorkloadRun) -> None:
    spec = pod(run)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    # Every writable path is an emptyDir of the pod's own (the root file system is read-only).
    assert mounts == {"/tmp": "tmp", "/dev/shm": "dshm", "/tmp/flowhost/envs": "envs"}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert set(volumes) == set(mounts.values())
    assert all("emptyDir" in v for v in volumes.values())
    assert volumes["envs"]["emptyDir"] == {}  # environments can be large: no memory medium


def test_keda_owns_the_replica_count(run: WorkloadRun) -> None:
    deployment = run.one(DEPLOYMENT)
    assert manifest(deployment)["spec"]["replicas"] == 0
    assert deployment.ignore_changes == ("spec.replicas",)
    spec = manifest(run.one(SCALED_OBJECT))["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["cooldownPeriod"]) == (0, 3, 300)
    pdb = manifest(run.one("kubernetes:policy/v1:PodDisruptionBudget"))["spec"]
    assert pdb["maxUnavailable"] == 1
    labels = manifest(deployment)["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert labels == {
        "app.kubernetes.io/name": "caption",
        "flowhost.io/service": "caption",
        "flowhost.io/version": "3",
    }


def test_keda_triggers(run: WorkloadRun) -> None:
    queue, *in_flight = manifest(run.one(SCALED_OBJECT))["spec"]["triggers"]
    assert queue == {
        "type": "aws-sqs-queue",
        "name": "queue",
        "metadata": {
            "queueURL": gpu_args().queue_url,
            "queueLength": "2",
            "awsRegion": "us-east-1",
        },
        "authenticationRef": {"name": NAME},
    }
    auth = manifest(run.one("kubernetes:keda.sh/v1alpha1:TriggerAuthentication"))
    assert auth["metadata"]["name"] == NAME
    assert auth["spec"] == {"podIdentity": {"provider": "aws", "identityOwner": "keda"}}
    url = f"http://{NAME}.{NAMESPACE}.svc.cluster.local:{SERVICE_PORT}/metrics"
    assert [t["name"] for t in in_flight] == ["in-flight-batch", "in-flight-describe"]
    for trigger, endpoint in zip(in_flight, ["batch", "describe"], strict=True):
        assert trigger["metadata"] == {
            "url": url,
            "format": "prometheus",
            "valueLocation": f'flowhost_requests_in_flight{{endpoint="{endpoint}"}}',
            "targetValue": "2",
            "aggregateFromKubeServiceEndpoints": "true",
            "aggregationType": "sum",
        }


def test_irsa_role(run: WorkloadRun) -> None:
    role = run.one("aws:iam/role:Role")
    assert role.inputs["permissionsBoundary"] == OUTPUTS["servicePermissionsBoundaryArn"]
    assert role.inputs["tags"]["flowhost:service"] == "caption"
    trust = json.loads(role.inputs["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    host = ISSUER.removeprefix("https://")
    assert statement == {
        "Effect": "Allow",
        "Principal": {"Federated": OUTPUTS["eksOidcProviderArn"]},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {
                f"{host}:sub": f"system:serviceaccount:{NAMESPACE}:{NAME}",
                f"{host}:aud": "sts.amazonaws.com",
            }
        },
    }
    account = manifest(run.one("kubernetes:core/v1:ServiceAccount"))
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": run.outputs["role_arn"]
    }
    policy = run.one("aws:iam/rolePolicy:RolePolicy")
    assert policy.inputs["role"] == role.id


def test_iam_documents_pass_parliament(run: WorkloadRun) -> None:
    trust = json.loads(run.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    inline = json.loads(run.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    assert findings_above_low(trust, "trust") == []
    assert findings_above_low(inline, "identity") == []


def test_no_eks_is_refused_before_anything_is_created() -> None:
    no_eks = {k: v for k, v in OUTPUTS.items() if not k.startswith("eks")}
    platform = PlatformRef.from_outputs({**no_eks, "eksEnabled": False})
    recorded: list[Recorded] = []
    with pytest.raises(ValueError, match="flowhost:eksEnabled"):
        run_workload(lambda: (gpu_args(platform=platform), None), recorded)
    assert recorded == []


def test_no_eks_message_names_the_service_and_the_setting() -> None:
    no_eks = {k: v for k, v in OUTPUTS.items() if not k.startswith("eks")}
    platform = PlatformRef.from_outputs({**no_eks, "eksEnabled": False})
    with pytest.raises(ValueError, match=r"GPU service 'caption'.*flowhost:eksEnabled") as err:
        GpuWorkload("caption-v3", replace(gpu_args(), platform=platform))
    assert "Set flowhost:eksEnabled: true" in str(err.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"version": 0}, r"version must be 1 or more .*\(got version 0, 'caption-v0'\)"),
        ({"definition": definition_of(Caption).model_copy(update={"resources": Resources()})},
         r"resources.gpu must be at least 1 for a GpuWorkload \(got 0\)"),
        ({"platform": replace(PlatformRef.from_outputs(OUTPUTS), eks_oidc_issuer=None)},
         r"no EKS cluster .*missing: eksOidcIssuer"),
        ({"definition": definition_of(Caption).model_copy(update={"name": "c" * 62})},
         r"at most 63 characters \(got version 3, 'c{62}-v3'\)"),
    ],
)  # fmt: skip
def test_bad_args_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GpuWorkload("x", replace(gpu_args(), **changes))


def test_a_queue_outside_the_platform_prefix_fails() -> None:
    with pytest.raises(ValueError, match=r"queue 'other-queue'.*queueNamePrefix 'flowhost-prod-'"):
        run_workload(lambda: (gpu_args(queue_name="other-queue"), None))


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/q", "eu-west-1"),
        ("https://us-east-2.queue.amazonaws.com/123456789012/q", "us-east-2"),
    ],
)
def test_queue_region(url: str, region: str) -> None:
    assert queue_region(url) == region
