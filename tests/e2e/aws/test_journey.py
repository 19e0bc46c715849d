"""The AWS journey, composed from the real parts the way AWS runs them.

``pulumi up`` of the platform and of a user stack (their programs, under the bridge, into
moto, the Lambda and API Gateway emulations, a TLS PostgreSQL), then the CLI as a user
runs it against a named, SigV4-signed target: deploy (the control plane numbers the
version and creates its compute from the envelope the user stack wrote), progress,
promote, invoke through the edge, the ALB and the real container bootstrap on ECS,
idle to zero, a cold call held by the activator and answered through the 303 path, an
async request through SQS, rollback, undeploy, and the event trail naming the signed
identity. Nothing here sets what the stacks should have set.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowhost.auth import SigV4
from flowhost.targets import Target
from tests.e2e.aws.apigw import ApiGateway
from tests.e2e.aws.conftest import ADMIN
from tests.e2e.aws.lambdas import LambdaEmulator
from tests.e2e.aws.stack import REGION, StackBridge, StackRecord
from tests.integration.support import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PLATFORM_STACK = "acme/flowhost-platform/dev"
SENTIMENT = ROOT / "examples" / "services" / "sentiment.py"
FLOWHOST = str(Path(sys.executable).parent / "flowhost")


def user_stack(bridge: StackBridge, platform: StackRecord) -> StackRecord:
    """``pulumi up`` of a user stack holding the example service's ServiceSpec."""

    def program() -> Any:
        from flowhost.infra import PlatformRef, ServiceSpec
        from flowhost.services.loader import load_service

        ref = PlatformRef.from_stack(PLATFORM_STACK)
        return ServiceSpec("sentiment", spec=load_service(str(SENTIMENT)), platform=ref)

    return bridge.run(
        program, project="sentiment-service", stack="dev",
        config={"aws:region": REGION}, references={PLATFORM_STACK: platform.outputs},
    )  # fmt: skip


class Cli:
    """The flowhost CLI, as a user runs it, against the ``aws`` target."""

    def __init__(self, env: dict[str, str], home: Path, edge: ApiGateway) -> None:
        config = home / "config.toml"
        config.write_text(
            f'[targets.aws]\nurl = "{edge.url}"\nauth = "sigv4"\nregion = "{REGION}"\n'
        )
        self.env = {
            **env,
            "FLOWHOST_CONFIG": str(config),
            "AWS_ACCESS_KEY_ID": ADMIN[0],
            "AWS_SECRET_ACCESS_KEY": ADMIN[1],
            "AWS_DEFAULT_REGION": REGION,
        }
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            self.env.pop(name, None)

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [FLOWHOST, *args, "--target", "aws"], env=self.env, cwd=ROOT,
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip


@pytest.fixture(scope="module")
def cli(
    base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, edge: ApiGateway
) -> Cli:
    return Cli(base_env, tmp_path_factory.mktemp("cli-home"), edge)


@pytest.fixture(scope="module")
def signed(edge: ApiGateway) -> Iterator[httpx.Client]:
    """An httpx client signing as the admin, the way flowhost's client does."""
    target = Target(name="aws", url=edge.url, auth="sigv4", region=REGION)
    from botocore.credentials import Credentials

    auth = SigV4(target, REGION, Credentials(ADMIN[0], ADMIN[1]))
    with httpx.Client(base_url=edge.url, auth=auth, timeout=120) as client:
        yield client


def tails(lambdas: LambdaEmulator, containers: Any = None, lines: int = 40) -> str:
    """The end of every function's log (and the tasks' exits), for a failing step."""
    parts = [
        f"--- {name}\n" + "\n".join(lambdas.log(name).splitlines()[-lines:])
        for name in lambdas.functions
    ]
    for stopped in getattr(containers, "stopped", []) or []:
        parts.append(f"--- task {stopped}")
    return "\n".join(parts)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(0.25)


def test_the_journey_from_pulumi_up_to_an_answer_at_production(
    bridge: StackBridge,
    platform: StackRecord,
    edge: ApiGateway,
    balancer: Any,
    containers: Any,
    lambdas: LambdaEmulator,
    cli: Cli,
    signed: httpx.Client,
    sentiment_run: str,
) -> None:
    # -- the user stack writes the service's envelope; it creates no per-version compute
    service_stack = user_stack(bridge, platform)
    kinds = {r.type for r in service_stack.resources}
    assert "aws:ssm/parameter:Parameter" in kinds
    assert not kinds & {"aws:ecs/service:Service", "aws:lb/targetGroup:TargetGroup"}

    # -- deploy from the CLI, signed, through the edge; the deploy outlives the request
    deployed = cli("deploy", str(SENTIMENT), "--promote")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr + tails(lambdas, containers)
    assert "promoted" in deployed.stdout + deployed.stderr

    # -- invoke through the edge -> ALB -> the real container on ECS
    answer = signed.post("/sentiment/predict", json={"text": "a great film"})
    assert answer.status_code == 200, answer.text + tails(lambdas, containers)
    assert answer.json()["label"] in ("positive", "negative")
    assert answer.headers.get("x-flowhost-run") == sentiment_run
