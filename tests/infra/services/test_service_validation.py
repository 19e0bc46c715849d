"""Unit tier: ServiceSpec checks its arguments before it creates anything."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from flowhost.infra import Deploy, ServiceOptions, ServiceSpec
from flowhost.infra.service.fargate import FARGATE_SIZES, fargate_size
from flowhost.services import definition_of
from flowhost.services.envelope import ServiceEnvelope
from tests.infra.services.example.tiny import Big, Tiny
from tests.infra.services.harness import platform, run_services

EXAMPLE = Path(__file__).resolve().parent / "example"


def failure(**kwargs: Any) -> str:
    """The message of the error ServiceSpec raises (and that nothing was created)."""
    args: dict[str, Any] = {"name": "tiny", "spec": Tiny, "platform": platform()}
    args.update(kwargs)
    caught: list[str] = []

    def build() -> dict[str, Any]:
        with pytest.raises(ValueError, match=r"^ServiceSpec ") as error:
            ServiceSpec(**args)
        caught.append(str(error.value))
        return {}

    run = run_services(build)
    assert run.resources == []
    return caught[0]


def test_a_gpu_service_without_eks_names_the_platform_setting() -> None:
    message = failure(name="big", spec=Big)
    assert message.startswith("ServiceSpec 'big': service 'big' asks for resources.gpu=1")
    assert "flowhost:eksEnabled: true" in message
    assert "PlatformRef.from_stack(..., eks_enabled=True)" in message


def test_names_too_long_for_aws() -> None:
    long_name = "x" * 60
    assert "too long for its IAM role names" in failure(name=long_name)
    definition = definition_of(Tiny).model_copy(update={"name": "t" * 70})
    message = failure(spec=definition, code_dir=EXAMPLE)
    assert "longer than SQS's 80 characters" in message


def test_bad_aliases_and_options_are_all_reported_at_once() -> None:
    message = failure(
        aliases=["Prod", "canary", "canary"],
        version=0,
        deploy=Deploy(),
        options=ServiceOptions(max_receive_count=0, log_retention_days=31, spot_weight=-1),
    )
    lines = message.splitlines()
    assert len(lines) == 6, message
    assert all(line.startswith("ServiceSpec 'tiny': ") for line in lines)
    for part in ("alias 'Prod'", "aliases must be distinct", "version must be 1",
                 "max_receive_count", "log_retention_days", "spot_weight"):  # fmt: skip
        assert part in message


def test_a_pinned_run_needs_declared_artifacts_and_a_definition_needs_code_dir(
    tmp_path: Path,
) -> None:
    assert "declares no Artifacts" in failure(deploy=Deploy(run="TrainFlow/1"))
    assert "code_dir is required" in failure(spec=definition_of(Tiny))
    assert "is not under code_dir" in failure(code_dir=tmp_path)


def test_versions_runs_and_aliases_belong_to_the_control_plane_without_deploy() -> None:
    message = failure(version=2, run="TrainFlow/1", aliases=["production"])
    assert message.startswith(
        "ServiceSpec 'tiny': version=2, run='TrainFlow/1', aliases=['production'] only apply "
        "to code the stack deploys (got deploy=None). The control plane numbers versions"
    )
    assert "pass deploy=Deploy(...)" in message


def test_a_gpu_service_is_deployed_by_its_stack() -> None:
    args: dict[str, Any] = {"name": "big", "spec": Big, "platform": platform(eks=True)}
    caught: list[str] = []

    def build() -> dict[str, Any]:
        with pytest.raises(ValueError, match=r"^ServiceSpec ") as error:
            ServiceSpec(**args, deploy=Deploy())
        caught.append(str(error.value))
        return {}

    assert run_services(build).resources == []
    assert "deploy= applies to CPU services (got a GPU service)" in caught[0]


@pytest.mark.parametrize(
    ("cpu", "memory", "expected"),
    [
        (0.25, 128, (256, 512)),
        (0.25, 3000, (512, 3072)),  # memory needs more CPU
        (0.5, 1536, (512, 2048)),
        (1, 2048, (1024, 2048)),
        (3, 4096, (4096, 8192)),
        (16, 122880, (16384, 122880)),
    ],
)
def test_fargate_sizes(cpu: float, memory: int, expected: tuple[int, int]) -> None:
    assert fargate_size("svc", cpu, memory) == expected
    assert expected[1] in FARGATE_SIZES[expected[0]]


def test_an_impossible_size_says_what_fits() -> None:
    with pytest.raises(ValueError, match=re.escape("fit no Fargate task size")):
        fargate_size("svc", 16, 130000)


def test_a_gpu_service_with_eks_becomes_a_gpu_workload_not_an_ecs_service() -> None:
    specs: list[ServiceSpec] = []

    def build() -> dict[str, Any]:
        specs.append(ServiceSpec("big", spec=Big, platform=platform(eks=True)))
        return {"deployment": specs[0].gpu_deployment_name}

    run = run_services(build)
    types = {r.type for r in run.resources}
    assert "flowhost:service:GpuWorkload" in types
    assert not types & {"aws:ecs/service:Service", "aws:lb/listenerRule:ListenerRule",
                        "pulumi-python:dynamic:Resource"}  # fmt: skip
    assert run.outputs["deployment"] == "big-v1"
    assert specs[0].execution_role_arn is None
    # Its envelope tells the control plane that its stack runs it (ecs=None).
    envelope = ServiceEnvelope.model_validate_json(run.named("big-envelope").inputs["value"])
    assert (envelope.service, envelope.ecs) == ("big", None)
    assert run.named("big-envelope").inputs["name"] == "/flowhost/dev/services/big"


def test_an_environment_digest_is_a_build_digest_for_a_stack_run_gpu_version() -> None:
    message = failure(environment_digest="sha256-ABC")
    lines = message.splitlines()
    assert lines == [
        "ServiceSpec 'tiny': environment_digest must be 'sha256-' and 64 lowercase hex digits "
        "(got 'sha256-ABC'). Pass the digest of a built environment, as the control plane "
        "records it.",
        "ServiceSpec 'tiny': environment_digest applies to GPU services, whose version the "
        "stack runs (got 'sha256-ABC' for a CPU service). The control plane resolves a CPU "
        "version's environment at deploy: drop environment_digest.",
    ]
    good = "sha256-" + "0f" * 32
    assert "applies to GPU services" in failure(environment_digest=good)
    caught: list[str] = []

    def build() -> dict[str, Any]:
        with pytest.raises(ValueError, match=r"^ServiceSpec ") as error:
            ServiceSpec("big", spec=Big, platform=platform(eks=True), environment_digest="x")
        caught.append(str(error.value))
        return {}

    assert run_services(build).resources == []
    assert caught[0].startswith("ServiceSpec 'big': environment_digest must be 'sha256-'")
