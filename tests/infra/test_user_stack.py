"""The example user stack (examples/user-stack) runs under the recording mock, with the
platform's outputs coming through a StackReference: the CPU service always, the GPU one
when the platform has EKS; everything it creates passes the policy pack."""

from __future__ import annotations

import runpy
from typing import Any

import pulumi
import pytest
from pulumi.runtime import settings
from pulumi.runtime.mocks import MockResourceArgs

from flowhost.services.envelope import ServiceEnvelope
from tests.infra.gpu_services.harness import manifest
from tests.infra.recording import ROOT, PlatformRun, RecordingMonitor
from tests.infra.services.harness import EKS_OUTPUTS, PLATFORM_OUTPUTS, RUNTIME_IMAGE, ServiceMocks
from tests.infra.test_policy_pack import as_policy_resource
from tests.policies.loader import load_policy_pack

load_policy_pack()

from policies.engine import PolicyConfig, evaluate  # noqa: E402

USER_STACK = ROOT / "examples" / "user-stack" / "__main__.py"


class PlatformStackMocks(ServiceMocks):
    """The service mocks, plus a platform stack behind every StackReference."""

    def __init__(self, outputs: dict[str, Any]) -> None:
        super().__init__()
        self.outputs = outputs

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        if args.typ == "pulumi:pulumi:StackReference":
            return args.name, {"name": args.name, "outputs": self.outputs}
        return super().new_resource(args)


def run_user_stack(
    stack: str, *, eks: bool, environment: str | None = None, without: tuple[str, ...] = ()
) -> PlatformRun:
    outputs = {
        **PLATFORM_OUTPUTS, **(EKS_OUTPUTS if eks else {}), "environment": environment or stack
    }  # fmt: skip
    outputs = {k: v for k, v in outputs.items() if k not in without}
    mocks = PlatformStackMocks(outputs)
    monitor = RecordingMonitor(mocks)
    settings.ROOT.set(None)
    pulumi.runtime.set_all_config(
        {
            "acme-services:platformStack": f"acme/flowhost-platform/{stack}",
            "acme-services:eksEnabled": "true" if eks else "false",
        },
        [],
    )
    pulumi.runtime.set_mocks(
        mocks, project="acme-services", stack=stack, preview=False, monitor=monitor
    )

    @pulumi.runtime.test
    def program() -> None:
        runpy.run_path(str(USER_STACK), run_name="__main__")

    program()
    return PlatformRun(list(monitor.recorded), {})


@pytest.mark.parametrize(("stack", "eks"), [("dev", False), ("prod", True)])
def test_the_example_user_stack(stack: str, eks: bool) -> None:
    run = run_user_stack(stack, eks=eks)
    specs = sorted(r.name for r in run.resources if r.type == "flowhost:service:ServiceSpec")
    assert specs == (["batch-scorer", "sentiment"] if eks else ["sentiment"])
    services = {r.type for r in run.resources}
    # sentiment: its envelope, and its code deployed through the control plane
    assert "aws:ssm/parameter:Parameter" in services
    assert "pulumi-python:dynamic:Resource" in services
    assert not services & {"aws:ecs/service:Service", "aws:ecs/taskDefinition:TaskDefinition"}
    assert ("kubernetes:apps/v1:Deployment" in services) == eks  # batch-scorer: EKS
    resources = [as_policy_resource(r) for r in run.resources if r.custom]
    config = PolicyConfig(environment=stack, allowed_gpu_instance_types=frozenset({"g5.xlarge"}))
    violations = evaluate(resources, config)
    assert violations == [], "\n".join(f"{v.policy}: {v.message}" for v in violations)


def test_a_platform_stack_of_another_environment_is_refused() -> None:
    with pytest.raises(Exception, match="is the 'prod' environment, not 'dev'"):
        run_user_stack("dev", eks=False, environment="prod")


@pytest.mark.parametrize(("stack", "eks"), [("dev", False), ("prod", True)])
def test_the_services_run_the_platforms_runtime_image(stack: str, eks: bool) -> None:
    """The example passes no image=: the image is the platform stack's runtimeImage."""
    run = run_user_stack(stack, eks=eks)
    envelope = ServiceEnvelope.model_validate_json(run.named("sentiment-envelope").inputs["value"])
    assert envelope.ecs is not None
    assert envelope.ecs.image == RUNTIME_IMAGE
    deployments = run.of_type("kubernetes:apps/v1:Deployment")
    assert len(deployments) == int(eks)
    for deployment in deployments:
        (container,) = manifest(deployment)["spec"]["template"]["spec"]["containers"]
        assert container["image"] == RUNTIME_IMAGE


def test_a_platform_stack_without_a_runtime_image_says_so() -> None:
    with pytest.raises(Exception, match=r"exports no runtimeImage .*or pass image= to ServiceSpec"):
        run_user_stack("dev", eks=False, without=("runtimeImage",))


def test_the_stack_deploys_through_the_platforms_api_signed() -> None:
    """Deploy() without target: the platform's apiUrl, SigV4, the stack's region."""
    run = run_user_stack("dev", eks=False)
    (deploy,) = run.of_type("pulumi-python:dynamic:Resource")
    assert deploy.inputs["target"] == {
        "name": "platform-dev", "url": PLATFORM_OUTPUTS["apiUrl"], "auth": "sigv4",
        "region": "us-east-1",
    }  # fmt: skip
    assert deploy.inputs["aliases"] == ["production"]


def test_a_platform_stack_without_an_api_url_says_so() -> None:
    with pytest.raises(Exception, match=r"deploy= needs the platform stack's apiUrl output"):
        run_user_stack("dev", eks=False, without=("apiUrl",))
