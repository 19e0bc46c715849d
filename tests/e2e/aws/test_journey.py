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

import dataclasses
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
from tests.e2e.aws.apigw import ApiGateway, Identity
from tests.e2e.aws.conftest import ADMIN, ADMIN_ARN
from tests.e2e.aws.lambdas import LambdaEmulator
from tests.e2e.aws.stack import REGION, StackBridge, StackRecord
from tests.integration.support import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PLATFORM_STACK = "acme/flowhost-platform/dev"
SENTIMENT = ROOT / "examples" / "services" / "sentiment.py"
NAPPER = ROOT / "tests" / "e2e" / "services" / "napper.py"
JOBS = ROOT / "tests" / "e2e" / "services" / "jobs.py"
BROKEN = ROOT / "tests" / "e2e" / "services" / "sentiment_broken.py"
FLOWHOST = str(Path(sys.executable).parent / "flowhost")


def user_stack(
    bridge: StackBridge, platform: StackRecord, source: Path, deploy: Any = None
) -> StackRecord:
    """``pulumi up`` of a user stack holding the ServiceSpec of the service in ``source``
    (with ``deploy``, a ``flowhost.infra.Deploy``: its code deployed through the control
    plane); the stack exports the version number the control plane gave it."""
    from flowhost.services.loader import load_service

    cls = load_service(str(source))

    def program() -> Any:
        from flowhost.infra import PlatformRef, ServiceSpec

        ref = PlatformRef.from_stack(PLATFORM_STACK)
        return ServiceSpec(cls.name, spec=cls, platform=ref, deploy=deploy)

    return bridge.run(
        program, project=f"{cls.name}-service", stack="dev",
        config={"aws:region": REGION}, references={PLATFORM_STACK: platform.outputs},
        exports=lambda spec: {"version": spec.version_number} if deploy is not None else {},
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
        command = [FLOWHOST, *args, "--target", "aws"]
        try:
            return subprocess.run(
                command, env=self.env, cwd=ROOT, capture_output=True, text=True,
                timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as expired:  # what it said so far says why
            said = [_text(expired.stdout), _text(expired.stderr)]
            raise AssertionError(
                f"{' '.join(args)}: no end in {timeout:g}s\n" + "\n".join(said)
            ) from None


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


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
    shorten_edge_budget(lambdas, platform)
    service_stack = user_stack(bridge, platform, SENTIMENT)
    kinds = {r.type for r in service_stack.resources}
    assert "aws:ssm/parameter:Parameter" in kinds
    assert not kinds & {"aws:ecs/service:Service", "aws:lb/targetGroup:TargetGroup"}

    # -- deploy from the CLI, signed, through the edge; the deploy outlives the request
    deployed = cli("deploy", str(SENTIMENT), "--promote")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr + tails(lambdas, containers)
    shown = deployed.stdout + deployed.stderr
    for line in ("recorded sentiment v1", "starting the first instance", "ready", "promoted"):
        assert line in shown, shown

    # -- invoke through the edge -> ALB -> the real container on ECS
    answer = signed.post("/sentiment/predict", json={"text": "a great film"})
    assert answer.status_code == 200, answer.text + tails(lambdas, containers)
    assert answer.json()["label"] in ("positive", "negative")
    assert answer.headers.get("x-flowhost-run") == sentiment_run
    assert answer.headers.get("x-flowhost-version") == "v1"
    with_cli = cli("invoke", "sentiment", "predict", "--data", '{"text": "dull"}')
    assert with_cli.returncode == 0, with_cli.stdout + with_cli.stderr
    assert '"label"' in with_cli.stdout

    # -- an async request through SQS, run by the version's own task
    submitted = signed.post("/sentiment/predict/async", json={"text": "queued"})
    assert submitted.status_code == 202, submitted.text + tails(lambdas, containers)
    request_id = submitted.json()["id"]
    status = wait_for(
        "the async request",
        lambda: (
            (doc := signed.get(f"/requests/{request_id}").json())["status"]
            in ("succeeded", "failed")
            and doc
        ),
        timeout=90,
    )
    assert status["status"] == "succeeded", status
    # lineage: the task recorded its version and run in the ledger; the control plane settled them
    assert (status["version"], status["run"]) == ("v1", sentiment_run), status
    result = signed.get(f"/requests/{request_id}/result")
    assert "label" in result.json()
    assert result.headers.get("x-flowhost-version") == "v1"
    assert result.headers.get("x-flowhost-run") == sentiment_run

    # -- idle to zero: the scheduled tick parks the version and ECS stops its task
    lambdas.invoke(scaler_name(platform), {"source": "aws.events"})
    containers.wait_gone("sentiment-v1")

    # -- a cold call at the edge: held by the activator, answered through the 303 path
    # (the task starts in a few seconds here, so the test shortens the activator's budget
    # from 25 s to 1 s: the knob FLOWHOST_EDGE_BUDGET_SECONDS, which the stack leaves unset)
    cold = signed.post("/sentiment/predict", json={"text": "what a great start"})
    assert cold.status_code == 200, cold.text + tails(lambdas, containers)
    assert [r.status_code for r in cold.history][:1] == [303], cold.history
    assert cold.history[0].headers["location"].startswith("/requests/")
    assert cold.json()["label"] == "positive"
    awake = signed.post("/sentiment/predict", json={"text": "warm again"})
    assert (awake.status_code, awake.history) == (200, []), awake.text + tails(lambdas)

    # -- a second version, promoted, rolled back, undeployed
    second = cli("deploy", str(SENTIMENT), "--promote")
    assert second.returncode == 0, second.stdout + second.stderr + tails(lambdas, containers)
    assert production(signed) == 2
    rolled = cli("rollback", "sentiment")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert production(signed) == 1
    removed = cli("undeploy", "sentiment", "v2")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    wait_for("v2's compute gone", lambda: "sentiment-v2" not in active_services(bridge, platform))
    after = signed.post("/sentiment/predict", json={"text": "still here"})
    assert after.status_code == 200, after.text

    # -- a version whose initialize raises never passes its health check: its tasks exit,
    # ECS's circuit breaker fails the rollout, the deploy fails; production is untouched
    broken = cli("deploy", str(BROKEN), "--promote")
    assert broken.returncode != 0, broken.stdout
    assert "failed" in broken.stdout + broken.stderr, broken.stdout + broken.stderr
    assert production(signed) == 1
    still = signed.post("/sentiment/predict", json={"text": "unharmed"})
    assert still.status_code == 200, still.text
    assert not containers.errors, containers.errors[:3]  # the emulation itself kept up

    # -- the trail names the signed identity, never a header
    events = signed.get("/api/services/sentiment/events", headers={"x-flowhost-actor": "mallory"})
    actors = {e["actor"] for e in events.json()}
    assert actors == {ADMIN_ARN}, actors
    kinds = [e["kind"] for e in events.json()]
    assert {"deploy", "promote", "rollback", "undeploy"} <= set(kinds), kinds

    # -- drift, both ways: compute no version owns
    ecs = bridge.client("ecs")
    cluster = platform.outputs["ecsClusterName"]
    task = ecs.list_task_definitions(familyPrefix="flowhost-dev-sentiment-v1")["taskDefinitionArns"]
    ecs.create_service(cluster=cluster, serviceName="sentiment-v99", taskDefinition=task[0])
    status_line = cli("status", "sentiment")
    assert status_line.returncode == 0, status_line.stdout + status_line.stderr
    assert "compute with no live version record: sentiment@v99" in status_line.stdout
    ecs.delete_service(cluster=cluster, service="sentiment-v99", force=True)


def function_name(platform: StackRecord, role: str) -> str:
    functions = platform.of_type("aws:lambda/function:Function")
    return next(str(platform.state_of(f)["name"]) for f in functions if role in f.name)


def scaler_name(platform: StackRecord) -> str:
    return function_name(platform, "scaler")


def shorten_edge_budget(lambdas: LambdaEmulator, platform: StackRecord) -> None:
    activator = lambdas.function(function_name(platform, "activator"))
    environment = {**activator.environment, "FLOWHOST_EDGE_BUDGET_SECONDS": "1"}
    lambdas.register(dataclasses.replace(activator, environment=environment))


def production(signed: httpx.Client, service: str = "sentiment") -> int:
    return int(signed.get(f"/api/services/{service}").json()["aliases"]["production"])


def active_services(bridge: StackBridge, platform: StackRecord) -> set[str]:
    ecs = bridge.client("ecs")
    cluster = platform.outputs["ecsClusterName"]
    arns = ecs.list_services(cluster=cluster)["serviceArns"]
    if not arns:
        return set()
    found = ecs.describe_services(cluster=cluster, services=arns)["services"]
    return {s["serviceName"] for s in found if s["status"] == "ACTIVE"}


def test_a_deploy_completes_when_every_invocation_is_a_fresh_process(
    bridge: StackBridge,
    platform: StackRecord,
    edge: ApiGateway,
    balancer: Any,
    containers: Any,
    lambdas: LambdaEmulator,
    cli: Cli,
    signed: httpx.Client,
) -> None:
    """Nothing in memory carries a deploy: with each invocation of the control plane in a
    new process (a recycled or frozen Lambda), the deploy still finishes, advanced by the
    function's invocations of itself, and every poll, wherever it lands, shows the same
    progress from the state DB."""
    user_stack(bridge, platform, NAPPER)
    api = function_name(platform, "fn-api")
    before = len(lambdas.invocations_of(api))
    lambdas.cold = True
    try:
        deployed = cli("deploy", str(NAPPER), "--promote")
        polled = [signed.get("/api/services/napper/versions/1").json() for _ in range(2)]
    finally:
        lambdas.cold = False
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr + tails(lambdas)
    assert polled[0]["progress"] == polled[1]["progress"]
    assert polled[0]["progress"][-1] == "ready"
    assert signed.get("/api/services/napper").json()["aliases"] == {"production": 1}
    invocations = lambdas.invocations_of(api)[before:]
    advancing = [i for i in invocations if i.event == {"flowhost": "advance-deploys"}]
    assert advancing, "the deploy was advanced by the function's own invocations"
    answer = signed.post("/napper/wake", json={})
    assert answer.status_code == 200, answer.text + tails(lambdas, containers)


def test_a_stack_and_the_cli_share_one_numbering_and_one_set_of_rules(
    bridge: StackBridge,
    platform: StackRecord,
    edge: ApiGateway,
    balancer: Any,
    containers: Any,
    lambdas: LambdaEmulator,
    cli: Cli,
    signed: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A user stack that deploys its code (ServiceSpec(deploy=Deploy(...))) registers it
    through the control plane, as the CLI does: the numbers come from one state DB, the
    rules from one writer; and status reports a version whose compute is gone."""
    from flowhost.infra import Deploy

    # the stack's deploy is signed with the standard credential chain, as `pulumi up` is
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ADMIN[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ADMIN[1])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    stack = user_stack(bridge, platform, JOBS, deploy=Deploy(promote=True))
    assert stack.outputs["version"] == 1
    kinds = {r.type for r in stack.resources}
    assert not kinds & {"aws:ecs/service:Service", "aws:lb/listenerRule:ListenerRule"}

    deployed = cli("deploy", str(JOBS), "--promote")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr + tails(lambdas)
    info = signed.get("/api/services/jobs").json()
    assert [v["number"] for v in info["versions"]] == [1, 2]
    assert info["aliases"] == {"production": 2}
    assert signed.post("/jobs/echo", json={"text": "hi"}).json()["text"] == "hi"

    rules = jobs_rules(bridge, platform)
    assert sorted(rules) == ["/jobs", "/jobs@v1", "/jobs@v2"], rules
    assert all(1000 <= priority < 25000 for priority in rules.values()), rules

    # drift the other way: a live version whose compute is gone
    ecs = bridge.client("ecs")
    cluster = platform.outputs["ecsClusterName"]
    ecs.update_service(cluster=cluster, service="jobs-v1", desiredCount=0)
    ecs.delete_service(cluster=cluster, service="jobs-v1", force=True)
    status_line = cli("status", "jobs")
    assert status_line.returncode == 0, status_line.stdout + status_line.stderr
    assert "live versions whose compute is gone: jobs@v1" in status_line.stdout


def jobs_rules(bridge: StackBridge, platform: StackRecord) -> dict[str, int]:
    """The listener's rules for jobs: their base path -> priority."""
    found = bridge.client("elbv2").describe_rules(ListenerArn=platform.outputs["albListenerArn"])
    out: dict[str, int] = {}
    for rule in found["Rules"]:
        for condition in rule.get("Conditions") or []:
            values = condition.get("PathPatternConfig", {}).get("Values") or []
            base = [v for v in values if not v.endswith("/*")]
            if base and base[0].split("@")[0] == "/jobs":
                out[base[0]] = int(rule["Priority"])
    return out


def policy_document(bridge: StackBridge, arn: str) -> dict[str, Any]:
    """A managed policy's document, as the platform stack created it in IAM."""
    iam = bridge.client("iam")
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    return iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]


def caller(edge: ApiGateway, key: str, arn: str, policies: list[dict[str, Any]]) -> httpx.Client:
    """A client signing as a caller holding exactly ``policies`` (identity policies)."""
    from botocore.credentials import Credentials

    secret = f"{key}-secret"
    edge.identities[key] = Identity(secret, arn, policies=tuple(policies))
    target = Target(name="aws", url=edge.url, auth="sigv4", region=REGION)
    auth = SigV4(target, REGION, Credentials(key, secret))
    return httpx.Client(base_url=edge.url, auth=auth, timeout=120)


def test_access_by_role_readers_invokers_deployers_and_the_ci_role(
    bridge: StackBridge, platform: StackRecord, edge: ApiGateway, signed: httpx.Client,
    lambdas: LambdaEmulator, containers: Any,
) -> None:  # fmt: skip
    """The platform stack's grants, as IAM applies them at the edge: a reader reads and
    cannot promote (403, nothing recorded); an invoker calls a service and cannot
    promote; a deployer promotes; so does the CI role's web-identity session."""
    outputs = platform.outputs
    readers, deployers, invokers = (
        policy_document(bridge, outputs[f"{role}PolicyArn"])
        for role in ("readers", "deployers", "invokers")
    )
    account = ADMIN_ARN.split(":")[4]
    if signed.get("/api/services/sentiment").status_code == 404:  # this test alone
        pytest.skip("needs the journey's deploy of sentiment: run the whole module")
    number = production(signed)
    promote = {"version": number}
    events = len(signed.get("/api/services/sentiment/events").json())

    with caller(edge, "AKIAFLOWHOSTREADER01", f"arn:aws:iam::{account}:user/reader",
                [readers]) as reader:  # fmt: skip
        assert reader.get("/api/services").status_code == 200
        refused = reader.post("/api/services/sentiment/aliases/canary", json=promote)
        assert refused.status_code == 403, refused.text
        assert reader.post("/sentiment/predict", json={"text": "hi"}).status_code == 403
    assert len(signed.get("/api/services/sentiment/events").json()) == events  # nothing ran

    with caller(edge, "AKIAFLOWHOSTINVOKER1", f"arn:aws:iam::{account}:user/invoker",
                [invokers]) as invoker:  # fmt: skip
        answer = invoker.post("/sentiment/predict", json={"text": "a fine day"})
        assert answer.status_code == 200, answer.text + tails(lambdas, containers)
        refused = invoker.post("/api/services/sentiment/aliases/canary", json=promote)
        assert refused.status_code == 403, refused.text
        assert invoker.get("/api/services").status_code == 403

    with caller(edge, "AKIAFLOWHOSTDEPLOYER", f"arn:aws:iam::{account}:user/deployer",
                [deployers]) as deployer:  # fmt: skip
        moved = deployer.post("/api/services/sentiment/aliases/canary", json=promote)
        assert moved.status_code == 200, moved.text

    ci_session = f"arn:aws:sts::{account}:assumed-role/flowhost-dev-ci-deploy/github-actions"
    with caller(edge, "ASIAFLOWHOSTCIDEPLOY", ci_session, [deployers]) as ci:
        moved = ci.post("/api/services/sentiment/aliases/staging", json=promote)
        assert moved.status_code == 200, moved.text
    actors = {e["actor"] for e in signed.get("/api/services/sentiment/events").json()}
    assert {f"arn:aws:iam::{account}:user/deployer", ci_session} <= actors
