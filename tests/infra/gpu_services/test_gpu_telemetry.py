"""Component tier: how a GPU pod's traces leave it, under the recording mock.

- the Deployment's pod runs the serving container and the ADOT collector as a native
  sidecar (an init container with ``restartPolicy: Always``), both hardened alike, the
  collector small, on no Service port, with the ECS tasks' image;
- the collector's ``AOT_CONFIG_CONTENT`` is the platform's config: OTLP in on the address
  the serving container exports to, X-Ray out;
- kubernetes-validate (strict, the platform's version) checks the init container too;
- through ``ServiceSpec``: the IRSA role may write to X-Ray (and the collector's metrics
  group), its documents pass parliament, and every resource passes the policy pack.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import urlparse

import kubernetes_validate
import pytest
import yaml

from flowhost.infra import ServiceSpec
from flowhost.infra.config import load_config
from flowhost.infra.observability import adot_collector_config
from flowhost.infra.service.package import COLLECTOR_OTLP
from flowhost.infra.service.pod import RUN_AS
from tests.infra.gpu_services.harness import COLLECTOR_IMAGE, WorkloadRun, manifest, run_workload
from tests.infra.recording import PlatformRun, stack_config
from tests.infra.services.example.tiny import Big
from tests.infra.services.harness import BOUNDARY, platform, run_services
from tests.infra.test_documents import findings_above_low
from tests.infra.test_policy_pack import as_policy_resource, pack_config
from tests.policies.loader import load_policy_pack

load_policy_pack()

from policies.engine import evaluate  # noqa: E402

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HARDENED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


@pytest.fixture(scope="module")
def run() -> WorkloadRun:
    return run_workload()


@pytest.fixture(scope="module")
def spec_run() -> PlatformRun:
    """A GPU service through ``ServiceSpec``, as a user stack creates it."""
    return run_services(
        lambda: {"role": ServiceSpec("big", spec=Big, platform=platform(eks=True)).task_role_arn}
    )


def pod(run: WorkloadRun | PlatformRun) -> dict[str, Any]:
    (deployment,) = run.of_type(DEPLOYMENT)
    return manifest(deployment)["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def test_the_pod_runs_the_collector_as_a_native_sidecar(run: WorkloadRun) -> None:
    spec = pod(run)
    (collector,) = spec["initContainers"]
    (serving,) = spec["containers"]
    assert (collector["name"], serving["name"]) == ("adot-collector", "serve")
    # The platform's collectorImage (its pull-through cache), as on ECS: no public pull.
    assert collector["image"] == COLLECTOR_IMAGE
    # Started before the serving container, stopped after it, restarted if it exits.
    assert collector["restartPolicy"] == "Always"
    assert "restartPolicy" not in serving


def test_both_containers_are_hardened_alike(run: WorkloadRun) -> None:
    spec = pod(run)
    assert spec["securityContext"]["runAsUser"] == RUN_AS
    assert spec["securityContext"]["runAsNonRoot"] is True
    for container in [*spec["initContainers"], *spec["containers"]]:
        assert container["securityContext"] == HARDENED, container["name"]


def test_the_collector_is_small_and_not_exposed(run: WorkloadRun) -> None:
    (collector,) = pod(run)["initContainers"]
    small = {"cpu": "100m", "memory": "128Mi"}
    # Requests equal limits in every container: the GPU pod stays Guaranteed QoS.
    assert collector["resources"] == {"requests": small, "limits": small}
    assert "ports" not in collector
    service = manifest(run.one("kubernetes:core/v1:Service"))["spec"]
    (serving,) = pod(run)["containers"]
    assert [p["targetPort"] for p in service["ports"]] == [p["name"] for p in serving["ports"]]


def test_the_collector_config_takes_otlp_and_exports_to_xray(run: WorkloadRun) -> None:
    (collector,) = pod(run)["initContainers"]
    env = env_of(collector)
    assert env["AOT_CONFIG_CONTENT"] == adot_collector_config("prod")  # the SSM parameter's
    config = yaml.safe_load(env["AOT_CONFIG_CONTENT"])
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == "127.0.0.1:4318"
    assert "awsxray" in config["exporters"]
    traces = config["service"]["pipelines"]["traces"]
    assert (traces["receivers"], traces["exporters"]) == (["otlp"], ["awsxray"])
    assert {"key": "flowhost.environment", "value": "prod", "action": "upsert"} in config[
        "processors"
    ]["resource"]["attributes"]


def test_kubernetes_validate_checks_the_sidecar(run: WorkloadRun) -> None:
    """The Deployment validates strictly; a typo in the init container does not, so the
    schema does look at it (restartPolicy on a container needs 1.29+)."""
    version = load_config(stack_config("prod"), "prod").eks_version
    deployment = manifest(run.one(DEPLOYMENT))
    kubernetes_validate.validate(deployment, version, strict=True)
    broken = copy.deepcopy(deployment)
    (collector,) = broken["spec"]["template"]["spec"]["initContainers"]
    collector["restartPolicyy"] = collector.pop("restartPolicy")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_the_serving_container_exports_to_the_collector(spec_run: PlatformRun) -> None:
    spec = pod(spec_run)
    (collector,) = spec["initContainers"]
    (serving,) = spec["containers"]
    endpoint = urlparse(env_of(serving)["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint.geturl() == COLLECTOR_OTLP
    config = yaml.safe_load(env_of(collector)["AOT_CONFIG_CONTENT"])
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == endpoint.netloc
    # Same region for both (the pod identity webhook would inject it too).
    assert env_of(collector)["AWS_REGION"] == env_of(serving)["AWS_REGION"]


def test_the_irsa_role_may_write_traces(spec_run: PlatformRun) -> None:
    (role,) = [r for r in spec_run.of_type("aws:iam/role:Role") if r.name.endswith("-gpu-role")]
    (policy,) = spec_run.of_type("aws:iam/rolePolicy:RolePolicy")
    assert policy.inputs["role"] == role.id
    document = json.loads(policy.inputs["policy"])
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert by_sid["Traces"]["Action"] == ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
    assert by_sid["CollectorMetrics"]["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert role.inputs["permissionsBoundary"] == BOUNDARY
    assert findings_above_low(document, "identity") == []
    assert findings_above_low(json.loads(role.inputs["assumeRolePolicy"]), "trust") == []


def test_every_resource_passes_the_policy_pack(spec_run: PlatformRun) -> None:
    resources = [as_policy_resource(r) for r in spec_run.resources if r.custom]
    assert any(r.type == DEPLOYMENT for r in resources)
    violations = evaluate(resources, pack_config("dev"))
    assert violations == [], "\n".join(f"{v.policy}: {v.message}" for v in violations)
