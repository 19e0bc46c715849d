"""The ECS and ALB emulations (ecs.py, alb.py) on moto: a service's desired count runs
the real container bootstrap with the task definition's environment, ready tasks are
registered in the target group, and the listener's rules (priorities, wildcards,
weights, Lambda targets) decide where each request goes, re-read on every request."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowhost.services.routing import path_patterns
from tests.e2e.aws.alb import AlbEmulator
from tests.e2e.aws.ecs import EcsEmulator, environment_of
from tests.e2e.aws.ecs_env import image_environment
from tests.e2e.aws.fleet_support import (
    PORT,
    EchoTarget,
    Version,
    create_version,
    forward,
    forward_rule,
    serving_environment,
)
from tests.integration.aws.container_support import (
    SERVICE,
    Package,
    Platform,
    fresh,
    make_package,
    make_platform,
)
from tests.integration.aws.support import Balancer, Network, create_balancer, create_network
from tests.integration.support import moto_clients

ClientFactory = Callable[[str], Any]
ECS_PROVIDED = {
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
    "AWS_DEFAULT_REGION", "AWS_EC2_METADATA_DISABLED", "ECS_CONTAINER_METADATA_URI_V4",
    "AWS_ENDPOINT_URL", "FLOWHOST_HOST", "FLOWHOST_CODE_DIR", "FLOWHOST_ENV_CACHE", "TMPDIR",
}  # fmt: skip
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:flowhost-test-activator"


@pytest.fixture
def aws(moto_endpoint: str) -> Iterator[ClientFactory]:
    with moto_clients(moto_endpoint) as make:
        yield make


@pytest.fixture
def network(aws: ClientFactory) -> Network:
    return create_network(aws("ec2"))


@pytest.fixture
def lb(aws: ClientFactory, network: Network) -> Balancer:
    return create_balancer(aws("elbv2"), network)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    return make_package(tmp_path_factory)


@pytest.fixture
def shared(aws: ClientFactory) -> Platform:
    return make_platform(aws)


@pytest.fixture
def cluster(aws: ClientFactory) -> str:
    name = fresh("cluster")
    aws("ecs").create_cluster(clusterName=name)
    return name


@pytest.fixture
def ecs(moto_endpoint: str, cluster: str, tmp_path: Path) -> Iterator[EcsEmulator]:
    """Not started: each test syncs it explicitly (``sync``, ``wait_ready``)."""
    logs = tmp_path / "tasks"
    logs.mkdir()
    emulator = EcsEmulator(moto_endpoint, cluster, logs, restart_budget=2)
    try:
        yield emulator
    finally:
        emulator.close()


class Invocations:
    """``invoke_lambda`` for the ALB emulation: records calls, answers ``answer``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answer: dict[str, Any] | Exception = {"statusCode": 200, "body": ""}

    def __call__(self, arn: str, event: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((arn, event))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture
def invocations() -> Invocations:
    return Invocations()


@pytest.fixture
def alb(moto_endpoint: str, lb: Balancer, invocations: Invocations) -> Iterator[AlbEmulator]:
    emulator = AlbEmulator(moto_endpoint, lb.listener, invocations, seed=7)
    try:
        yield emulator
    finally:
        emulator.close()


@pytest.fixture
def targets() -> Iterator[Callable[[str], EchoTarget]]:
    started: list[EchoTarget] = []

    def start(name: str) -> EchoTarget:
        # moto keys an IP group's targets by address: each target gets its own
        started.append(EchoTarget(name, f"127.0.0.{201 + len(started)}"))
        return started[-1]

    yield start
    for target in started:
        target.close()


def version(
    aws: ClientFactory, network: Network, lb: Balancer, cluster: str, shared: Platform,
    package: Package, secrets: dict[str, str] | None = None,
) -> tuple[Version, dict[str, str]]:  # fmt: skip
    environment = serving_environment(shared, shared.upload(package), package.digest)
    made = create_version(aws, network, lb, cluster, environment, secrets)
    forward_rule(lb, 10, list(path_patterns(SERVICE, "production")), {made.target_group: 1})
    return made, environment


def registered(lb: Balancer, group: str) -> list[tuple[str, int]]:
    found = lb.client.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"]
    return sorted((t["Target"]["Id"], int(t["Target"]["Port"])) for t in found)


# -- ECS ---------------------------------------------------------------------------------------


def test_a_desired_task_runs_the_bootstrap_with_the_task_definitions_environment(
    aws: ClientFactory, network: Network, lb: Balancer, cluster: str, shared: Platform,
    package: Package, ecs: EcsEmulator, alb: AlbEmulator,
) -> None:  # fmt: skip
    secret = aws("secretsmanager").create_secret(
        Name=fresh("metaflow-key"), SecretString=json.dumps({"key": "s3cr3t"})
    )["ARN"]
    made, environment = version(aws, network, lb, cluster, shared, package,
                                {"METAFLOW_SERVICE_AUTH_KEY": f"{secret}:key::"})  # fmt: skip
    ecs.sync()
    assert ecs.tasks() == []  # desired 0: nothing runs

    assert made.scale(1)["runningCount"] == 0  # moto alone would say 1 at once
    ecs.sync()  # the task starts; it cannot answer /readyz yet (it is importing)
    started = made.describe()
    assert (started["runningCount"], started["pendingCount"]) == (0, 1)
    assert started["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    (task,) = ecs.wait_ready(made.name, 1)
    env = environment_of(task)
    assert {k: env[k] for k in environment} == environment
    assert env["METAFLOW_SERVICE_AUTH_KEY"] == "s3cr3t"  # the secret, resolved at start
    image = image_environment(ecs.python)
    assert set(env) == {*environment, "METAFLOW_SERVICE_AUTH_KEY", *ECS_PROVIDED, *image}
    assert env["AWS_ACCESS_KEY_ID"] != "testing"  # the task role's own credentials
    assert (task.address, task.port, env["FLOWHOST_HOST"]) == (task.address, PORT, task.address)
    assert task.address.startswith("127.0.0.")
    assert task.address != "127.0.0.1"
    assert registered(lb, made.target_group) == [(task.address, PORT)]
    described = made.describe()
    assert ecs.honest  # moto runs in this process: its counts follow the tasks
    assert (described["runningCount"], described["pendingCount"]) == (1, 0)
    assert described["deployments"][0]["rolloutState"] == "COMPLETED"

    answer = httpx.post(f"{alb.url}/{SERVICE}/echo", json={"text": "hi"}, timeout=30)
    assert alb.forwarded[-1].target == f"{task.address}:{PORT}"
    assert answer.status_code == 200, answer.text  # the ALB forwards /<service>/<endpoint>
    assert answer.json()["text"] == "HI!"

    made.scale(0)
    ecs.wait_gone(made.name)
    assert task.process.returncode == 0  # SIGTERM: a graceful stop
    assert registered(lb, made.target_group) == []
    assert ecs.stopped == []  # stopped by the scheduler, not on its own
    described = made.describe()
    assert (described["runningCount"], described["pendingCount"]) == (0, 0)
    answer = httpx.post(f"{alb.url}/{SERVICE}/echo", json={"text": "hi"}, timeout=30)
    assert answer.status_code == 503


def test_two_tasks_keep_the_container_port_on_their_own_addresses_and_both_serve(
    aws: ClientFactory, network: Network, lb: Balancer, cluster: str, shared: Platform,
    package: Package, ecs: EcsEmulator, alb: AlbEmulator,
) -> None:  # fmt: skip
    made, _ = version(aws, network, lb, cluster, shared, package)
    ecs.start()  # as the suite runs it: a thread follows moto, nobody calls sync()
    made.scale(2)
    deadline = time.monotonic() + 120
    while len(tasks := ecs.ready(made.name)) < 2:
        assert time.monotonic() < deadline, f"not ready: {ecs.tasks()} {ecs.stopped}"
        time.sleep(0.2)
    assert ecs.errors == []
    addresses = {t.address for t in tasks}
    assert len(addresses) == 2
    assert {t.port for t in tasks} == {PORT}
    assert registered(lb, made.target_group) == sorted((a, PORT) for a in addresses)
    answers = [httpx.get(f"{alb.url}/{SERVICE}/healthz", timeout=30) for _ in range(4)]
    assert {f.target for f in alb.forwarded} == {f"{a}:{PORT}" for a in addresses}
    assert all(a.status_code != 503 for a in answers)

    made.scale(1)  # scale in: one is deregistered, then stopped
    (left,) = ecs.wait_ready(made.name, 1)
    assert registered(lb, made.target_group) == [(left.address, PORT)]
    made.ecs.delete_service(cluster=made.cluster, service=made.name, force=True)
    ecs.wait_gone(made.name)  # a deleted service's tasks stop
    assert left.process.returncode == 0
    assert ecs.errors == []


def test_a_task_that_exits_is_reported_with_its_log_and_restarted_within_the_budget(
    aws: ClientFactory, network: Network, lb: Balancer, cluster: str, shared: Platform,
    package: Package, ecs: EcsEmulator,
) -> None:  # fmt: skip
    environment = serving_environment(shared, shared.upload(package), package.digest)
    environment["FLOWHOST_CODE_PACKAGE"] = f"s3://{shared.bucket}/packages/missing.tar.gz"
    made = create_version(aws, network, lb, cluster, environment)
    made.scale(1)
    deadline = time.monotonic() + 120
    while len(ecs.stopped) < 2 or ecs.tasks():
        assert time.monotonic() < deadline, f"still running: {ecs.tasks()} {ecs.stopped}"
        ecs.sync()
        time.sleep(0.2)
    ecs.sync()
    assert len(ecs.stopped) == 2
    assert ecs.tasks() == []
    first = ecs.stopped[0]
    assert (first.service, first.exit_code) == (made.name, 1)
    assert "no such object" in first.tail
    assert "missing.tar.gz" in first.tail
    assert first.log.is_file()
    assert registered(lb, made.target_group) == []
    described = made.describe()
    assert (described["runningCount"], described["deployments"][0]["rolloutState"]) == (
        0,
        "FAILED",
    )


# -- ALB ---------------------------------------------------------------------------------------


def ip_group(lb: Balancer, *members: EchoTarget) -> str:
    group = lb.target_group()
    if members:
        lb.client.register_targets(TargetGroupArn=group, Targets=[m.target for m in members])
    return group


def lambda_group(lb: Balancer) -> str:
    group = lb.client.create_target_group(Name=fresh("fn"), TargetType="lambda")
    arn = group["TargetGroups"][0]["TargetGroupArn"]
    lb.client.register_targets(TargetGroupArn=arn, Targets=[{"Id": FUNCTION}])
    return arn


def seen(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_rules_apply_by_priority_with_alb_wildcards_and_the_default_action(
    lb: Balancer, alb: AlbEmulator, targets: Callable[[str], EchoTarget]
) -> None:
    one, two, three = targets("one"), targets("two"), targets("three")
    forward_rule(lb, 5, ["/a/*"], {ip_group(lb, one): 1})
    forward_rule(lb, 3, ["/a/b?"], {ip_group(lb, two): 1})
    forward_rule(lb, 7, ["/A*", "/x"], {ip_group(lb, three): 1})
    forward_rule(lb, 9, ["/empty/*"], {ip_group(lb): 1})

    def to(path: str) -> str:
        return seen(httpx.get(alb.url + path, timeout=10))["target"]

    assert to("/a/bc") == "two"  # priority 3 before 5
    assert to("/a/bcd") == "one"  # ? is exactly one character
    assert to("/a/b") == "one"
    assert to("/A/x") == "three"
    assert to("/x") == "three"
    assert to("/a/?q=/a/bc") == "one"  # the query is not matched
    missed = httpx.get(f"{alb.url}/a?x=/a/b", timeout=10)  # /a matches no rule
    assert (missed.status_code, missed.text) == (404, "{}")  # the listener's default
    assert alb.forwarded[-1].priority == "default"
    assert httpx.get(f"{alb.url}/empty/x", timeout=10).status_code == 503  # no targets


def test_an_ip_target_gets_the_request_with_alb_headers_round_robin(
    lb: Balancer, alb: AlbEmulator, targets: Callable[[str], EchoTarget]
) -> None:
    one, two = targets("one"), targets("two")
    forward_rule(lb, 10, ["/svc/*"], {ip_group(lb, one, two): 1})
    answers = [
        seen(httpx.post(f"{alb.url}/svc/predict?a=1&a=2", content=b"{}", timeout=10,
                        headers={"x-forwarded-for": "10.1.2.3", "x-custom": "yes"}))
        for _ in range(2)
    ]  # fmt: skip
    assert {a["target"] for a in answers} == {"one", "two"}
    got = answers[0]
    assert (got["method"], got["path"], got["query"], got["body"]) == (
        "POST", "/svc/predict", "a=1&a=2", "{}",
    )  # fmt: skip
    headers = dict(got["headers"])
    assert headers["x-forwarded-for"] == "10.1.2.3, 127.0.0.1"
    assert (headers["x-forwarded-proto"], headers["x-forwarded-port"]) == ("http", "80")
    assert headers["x-amzn-trace-id"].startswith("Root=1-")
    assert headers["x-custom"] == "yes"


def test_weights_moved_to_a_lambda_group_send_the_next_request_to_the_function(
    lb: Balancer, alb: AlbEmulator, targets: Callable[[str], EchoTarget],
    invocations: Invocations,
) -> None:  # fmt: skip
    instance, activator = ip_group(lb, targets("instance")), lambda_group(lb)
    rule = forward_rule(lb, 10, ["/svc", "/svc/*"], {instance: 1, activator: 0})
    assert seen(httpx.get(f"{alb.url}/svc/predict", timeout=10))["target"] == "instance"
    assert invocations.calls == []

    lb.client.modify_rule(RuleArn=rule, Actions=[forward({instance: 0, activator: 1})])
    invocations.answer = {
        "statusCode": 201, "isBase64Encoded": True, "body": base64.b64encode(b"\xff\x00").decode(),
        "multiValueHeaders": {"x-many": ["1", "2"], "content-type": ["application/x-bin"]},
    }  # fmt: skip
    answer = httpx.post(f"{alb.url}/svc/predict?a=x%20y&a=2", json={"t": 1}, timeout=10,
                        headers={"x-request-id": "r-1"})  # fmt: skip
    assert (answer.status_code, answer.content) == (201, b"\xff\x00")
    assert answer.headers.get_list("x-many") == ["1", "2"]
    ((arn, event),) = invocations.calls
    assert arn == FUNCTION
    assert event["requestContext"] == {"elb": {"targetGroupArn": activator}}
    assert (event["httpMethod"], event["path"]) == ("POST", "/svc/predict")
    assert event["multiValueQueryStringParameters"] == {"a": ["x%20y", "2"]}  # not decoded
    assert event["multiValueHeaders"]["x-request-id"] == ["r-1"]
    assert "x-amzn-trace-id" in event["multiValueHeaders"]
    assert (json.loads(event["body"]), event["isBase64Encoded"]) == ({"t": 1}, False)

    invocations.answer = {"statusCode": 200, "body": "x" * (1 << 20)}  # over 1 MB
    assert httpx.get(f"{alb.url}/svc", timeout=10).status_code == 502
    calls = len(invocations.calls)
    too_big = httpx.post(f"{alb.url}/svc", content=b"x" * ((1 << 20) + 1), timeout=10)
    assert (too_big.status_code, len(invocations.calls)) == (413, calls)  # never invoked
    invocations.answer = RuntimeError("Task timed out after 300.00 seconds")
    assert httpx.get(f"{alb.url}/svc", timeout=10).status_code == 502
    invocations.answer = {"statusCode": 204, "headers": {"x-one": "1"}, "body": ""}
    answer = httpx.get(f"{alb.url}/svc", timeout=10)
    assert (answer.status_code, answer.headers["x-one"]) == (204, "1")
