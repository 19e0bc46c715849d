"""Component tier: a service on a platform with Metaflow settings (``flowhost:metaflow``).

The envelope (and so every version's task definition) carries the platform's Metaflow
variables instead of the platform bucket's datastore, ECS injects the metadata service's
key from its secret, the task role reads only the flow's folder under the datastore
root, and the execution role reads only that secret; the pod on EKS gets the secret's
ARN and its IRSA role may read it.
"""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from flowhost.infra import Deploy, PlatformRef, ServiceSpec
from flowhost.lambdas.aws.taskdef import task_definition
from flowhost.services.envelope import ServiceEnvelope, version_environment
from flowhost.targets import Target
from tests.infra.gpu_services.harness import manifest
from tests.infra.recording import ACCOUNT_ID, PlatformRun
from tests.infra.services.example.tiny import Big, Scored
from tests.infra.services.harness import (
    COLLECTOR_IMAGE,
    EKS_OUTPUTS,
    PLATFORM_OUTPUTS,
    run_services,
)

SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT_ID}:secret:metaflow-key-AbCdEf"
METAFLOW = {
    "METAFLOW_DEFAULT_METADATA": "service",
    "METAFLOW_SERVICE_URL": "https://metaflow.example.com/api",
    "METAFLOW_DEFAULT_DATASTORE": "s3",
    "METAFLOW_DATASTORE_SYSROOT_S3": "s3://acme-metaflow/mf",
    "USERNAME": "flowhost",
    "FLOWHOST_METAFLOW_NAMESPACE": "production",
}
SETTINGS = {
    "metaflowEnvironment": METAFLOW,
    "metaflowAuthSecretArn": SECRET,
    "metaflowDatastoreRoot": "s3://acme-metaflow/mf",
}


def platform(*, eks: bool = False) -> PlatformRef:
    return PlatformRef.from_outputs(
        {**PLATFORM_OUTPUTS, **(EKS_OUTPUTS if eks else {}), **SETTINGS}
    )


@pytest.fixture(scope="module")
def run() -> PlatformRun:
    def build() -> dict[str, Any]:
        api = Target(name="api", url="https://api.example.com", auth="sigv4")
        cpu = ServiceSpec("scored", spec=Scored, platform=platform(), run="TrainFlow/42",
                          deploy=Deploy(target=api))  # fmt: skip
        gpu = ServiceSpec("big", spec=Big, platform=platform(eks=True))
        return {"cpu": cpu.task_role_arn, "gpu": gpu.task_role_arn}

    return run_services(build)


def policy(run: PlatformRun, name: str) -> dict[str, dict[str, Any]]:
    document = json.loads(run.named(name).inputs["policy"])
    return {s["Sid"]: s for s in document["Statement"]}


def test_the_task_gets_the_settings_and_the_key_from_its_secret(run: PlatformRun) -> None:
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    assert shape is not None
    envelope = ServiceEnvelope.model_validate_json(run.named("scored-envelope").inputs["value"])
    env = version_environment(
        envelope, number=3, digest="sha256-" + "0" * 64, entrypoint="tiny.py:Scored",
        run="TrainFlow/42", artifact_flow="TrainFlow", queue_name="q", queue_url="https://q",
        dead_letter_url="https://q-dlq",
    )  # fmt: skip
    request = task_definition(envelope, 3, env)
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    serving, collector = request["containerDefinitions"]
    env = {e["name"]: e["value"] for e in serving["environment"]}
    assert {k: env[k] for k in METAFLOW} == METAFLOW
    assert env["FLOWHOST_RUN"] == "TrainFlow/42"
    assert "FLOWHOST_METAFLOW_AUTH_SECRET_ARN" not in env  # ECS injects the key itself
    assert serving["secrets"] == [{"name": "METAFLOW_SERVICE_AUTH_KEY", "valueFrom": SECRET}]
    assert collector["image"] == COLLECTOR_IMAGE


def test_the_roles_read_the_flows_folder_and_the_key_only(run: PlatformRun) -> None:
    task = policy(run, "scored-task-policy")
    assert "OwnArtifacts" not in task  # the platform bucket's metaflow/ folder is not used
    assert (
        task["MetaflowDatastoreObjects"]["Resource"] == "arn:aws:s3:::acme-metaflow/mf/TrainFlow/*"
    )
    assert task["MetaflowDatastoreListing"] == {
        "Sid": "MetaflowDatastoreListing",
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": "arn:aws:s3:::acme-metaflow",
        "Condition": {"StringLike": {"s3:prefix": "mf/TrainFlow/*"}},
    }
    assert "MetaflowAuthKey" not in task
    execution = policy(run, "scored-execution-policy")
    assert execution["MetaflowAuthKey"] == {
        "Sid": "MetaflowAuthKey",
        "Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue"],
        "Resource": SECRET,
    }


def test_the_pod_reads_the_key_itself(run: PlatformRun) -> None:
    (deployment,) = run.of_type("kubernetes:apps/v1:Deployment")
    spec = manifest(deployment)["spec"]["template"]["spec"]
    (serving,) = spec["containers"]
    env = {e["name"]: e["value"] for e in serving["env"]}
    assert {k: env[k] for k in METAFLOW} == METAFLOW
    assert env["FLOWHOST_METAFLOW_AUTH_SECRET_ARN"] == SECRET
    (collector,) = spec["initContainers"]
    assert collector["image"] == COLLECTOR_IMAGE
    irsa = [
        r
        for r in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if r.name.startswith("big") and "MetaflowAuthKey" in r.inputs["policy"]
    ]
    assert len(irsa) == 1
