"""Component tier: the image a ServiceSpec runs. Without ``image=`` it is the platform's
``runtimeImage`` (``PlatformRef.runtime_image``), on ECS (the envelope the control plane
makes task definitions from, and the execution role may pull it from the platform's
repository) and on EKS (the Deployment); ``image=`` still names another."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowhost.infra import PlatformRef, ServiceSpec
from flowhost.services.envelope import ServiceEnvelope
from tests.infra.gpu_services.harness import manifest
from tests.infra.recording import ACCOUNT_ID, REGION, REGISTRY, PlatformRun
from tests.infra.services.conftest import ServicesRun
from tests.infra.services.example.tiny import Big, Tiny
from tests.infra.services.harness import (
    PLATFORM_OUTPUTS,
    RUNTIME_IMAGE,
    RUNTIME_REPOSITORY,
    platform,
    run_services,
)

ECR_ARN = f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository"
OWN_IMAGE = f"{REGISTRY}/acme/serve-with-extras:2.0"
PUBLIC_IMAGE = "ghcr.io/acme/serve-with-extras:2.0"


def serving_image(run: ServicesRun | PlatformRun, component: str) -> str:
    value = run.named(f"{component}-envelope").inputs["value"]
    ecs = ServiceEnvelope.model_validate_json(value).ecs
    assert ecs is not None
    return ecs.image


def execution_statements(run: ServicesRun | PlatformRun, component: str) -> dict[str, Any]:
    document = json.loads(run.named(f"{component}-execution-policy").inputs["policy"])
    return {s["Sid"]: s for s in document["Statement"]}


def test_without_image_the_task_runs_the_platforms_runtime_image(services: ServicesRun) -> None:
    for component in ("tiny", "scored-svc"):
        assert serving_image(services, component) == RUNTIME_IMAGE


def test_the_execution_role_may_pull_the_platforms_image(services: ServicesRun) -> None:
    statements = execution_statements(services, "tiny")
    assert statements["PullImage"]["Resource"] == f"{ECR_ARN}/{RUNTIME_REPOSITORY}"
    assert sorted(statements["PullImage"]["Action"]) == [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    ]
    assert statements["RegistryLogin"] == {
        "Sid": "RegistryLogin",
        "Effect": "Allow",
        "Action": ["ecr:GetAuthorizationToken"],
        "Resource": "*",
    }


@pytest.fixture(scope="module")
def explicit() -> PlatformRun:
    """Two services given ``image=``: one in another ECR repository, one public."""

    def build() -> dict[str, Any]:
        ref = platform()
        own = ServiceSpec("own", spec=Tiny, platform=ref, image=OWN_IMAGE)
        public = ServiceSpec("public", spec=Tiny, platform=ref, image=PUBLIC_IMAGE)
        return {"own": own.task_role_arn, "public": public.task_role_arn}

    return run_services(build)


def test_image_still_overrides_the_platforms(explicit: PlatformRun) -> None:
    assert serving_image(explicit, "own") == OWN_IMAGE
    assert serving_image(explicit, "public") == PUBLIC_IMAGE
    own = execution_statements(explicit, "own")
    assert own["PullImage"]["Resource"] == f"{ECR_ARN}/acme/serve-with-extras"
    public = execution_statements(explicit, "public")
    assert "PullImage" not in public
    # The collector still comes from the platform's private cache: login and pull it.
    assert set(public) >= {"RegistryLogin", "PullCollector", "PullCollectorFillCache"}


def test_without_image_the_gpu_deployment_runs_the_platforms_runtime_image() -> None:
    run = run_services(
        lambda: {"role": ServiceSpec("big", spec=Big, platform=platform(eks=True)).task_role_arn}
    )
    (deployment,) = run.of_type("kubernetes:apps/v1:Deployment")
    (serving,) = manifest(deployment)["spec"]["template"]["spec"]["containers"]
    assert serving["image"] == RUNTIME_IMAGE


def test_platform_ref_reads_the_runtime_image_output() -> None:
    assert PlatformRef.from_outputs(PLATFORM_OUTPUTS).runtime_image == RUNTIME_IMAGE
    without = {k: v for k, v in PLATFORM_OUTPUTS.items() if k != "runtimeImage"}
    with pytest.raises(ValueError, match=r"has no output\(s\) runtimeImage\. Update"):
        PlatformRef.from_outputs(without)
