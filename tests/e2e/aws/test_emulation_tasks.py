"""The ECS emulation's RunTask tasks (ecs_tasks.py): a task started with ``ecs:RunTask``,
as the control plane starts an environment build, runs once as a local process with the
container's command (or the override's) and the environment a service task gets, and
ends STOPPED in moto with its exit code; at most two run at once, and none runs for ever."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.aws.ecs import EcsEmulator
from tests.e2e.aws.fleet_support import ROLE_POLICY
from tests.integration.aws.container_support import fresh
from tests.integration.aws.support import Network, create_network
from tests.integration.support import moto_clients

ClientFactory = Callable[[str], Any]
STARTED_BY = "flowhost-env-build"  # as the control plane starts a build
# Writes what the task saw to argv[1] (one line per run), says so, exits with argv[2].
REPORT = """
import json, os, sys
seen = {k: os.environ.get(k) for k in sys.argv[3:]}
with open(sys.argv[1], "a") as out:
    out.write(json.dumps({"python": sys.executable, "cwd": os.getcwd(), "env": seen}) + "\\n")
print("build ran", flush=True)
sys.exit(int(sys.argv[2]))
"""
WAIT_FOR = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.05)\n"


@pytest.fixture
def aws(moto_endpoint: str) -> Iterator[ClientFactory]:
    with moto_clients(moto_endpoint) as make:
        yield make


@pytest.fixture
def network(aws: ClientFactory) -> Network:
    # No DNS hostnames: moto's RunTask needs the emulation's help there (ECS does not).
    return create_network(aws("ec2"))


@pytest.fixture
def cluster(aws: ClientFactory) -> str:
    name = fresh("cluster")
    aws("ecs").create_cluster(clusterName=name)
    return name


@pytest.fixture
def make_emulator(
    moto_endpoint: str, cluster: str, tmp_path: Path
) -> Iterator[Callable[..., EcsEmulator]]:
    """Not started: tests sync it (``sync``, ``wait_task``) unless they start it."""
    made: list[EcsEmulator] = []

    def make(**options: Any) -> EcsEmulator:
        logs = tmp_path / f"tasks-{len(made)}"
        logs.mkdir()
        made.append(EcsEmulator(moto_endpoint, cluster, logs, **options))
        return made[-1]

    yield make
    for emulator in made:
        emulator.close()


def register(
    aws: ClientFactory, command: list[str], *, environment: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None, stop_timeout: int = 2,
) -> str:  # fmt: skip
    """A Fargate build task definition like the platform's: one ``build`` container with
    no memory of its own (the task's applies), a task role; its family."""
    role = aws("iam").create_role(RoleName=fresh("build"), AssumeRolePolicyDocument=ROLE_POLICY)
    family = fresh("environment-build")
    container: dict[str, Any] = {
        "name": "build", "image": "runtime:1", "essential": True, "command": command,
        "stopTimeout": stop_timeout,
        "environment": [{"name": k, "value": v} for k, v in (environment or {}).items()],
        "secrets": [{"name": k, "valueFrom": v} for k, v in (secrets or {}).items()],
    }  # fmt: skip
    aws("ecs").register_task_definition(
        family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256",
        memory="512", taskRoleArn=role["Role"]["Arn"], containerDefinitions=[container],
    )  # fmt: skip
    return family


def run_task(
    aws: ClientFactory, cluster: str, network: Network, family: str,
    command: list[str] | None = None, environment: dict[str, str] | None = None, count: int = 1,
) -> list[str]:  # fmt: skip
    """RunTask as the control plane calls it; the tasks' ARNs."""
    override: dict[str, Any] = {"name": "build"}
    if command is not None:
        override["command"] = command
    if environment is not None:
        override["environment"] = [{"name": k, "value": v} for k, v in environment.items()]
    started = aws("ecs").run_task(
        cluster=cluster, taskDefinition=family, launchType="FARGATE", count=count,
        startedBy=STARTED_BY, overrides={"containerOverrides": [override]},
        networkConfiguration={"awsvpcConfiguration": {
            "subnets": [network.subnets[0]], "securityGroups": [network.security_group],
            "assignPublicIp": "DISABLED"}},
    )  # fmt: skip
    assert started["failures"] == []
    return [str(t["taskArn"]) for t in started["tasks"]]


def describe(aws: ClientFactory, cluster: str, *arns: str) -> list[dict[str, Any]]:
    found = aws("ecs").describe_tasks(cluster=cluster, tasks=list(arns))["tasks"]
    order = {arn: i for i, arn in enumerate(arns)}
    return sorted(found, key=lambda t: order[t["taskArn"]])


def test_a_run_task_runs_the_override_once_with_a_tasks_environment_and_stops_with_its_code(
    aws: ClientFactory, network: Network, cluster: str, tmp_path: Path,
    make_emulator: Callable[..., EcsEmulator],
) -> None:  # fmt: skip
    secret = aws("secretsmanager").create_secret(
        Name=fresh("index"), SecretString=json.dumps({"username": "ci", "password": "s3cr3t"})
    )["ARN"]
    family = register(
        aws, ["python", "-c", "raise SystemExit('the definition command ran')"],
        environment={"FLOWHOST_BUCKET": "platform", "SHARED": "from the definition"},
        secrets={"FLOWHOST_PACKAGE_INDEX_CREDENTIALS": secret},
    )  # fmt: skip
    ecs = make_emulator()
    report = tmp_path / "report.jsonl"
    names = ["FLOWHOST_BUCKET", "SHARED", "FLOWHOST_PACKAGE_INDEX_CREDENTIALS", "AWS_ENDPOINT_URL",
             "AWS_ACCESS_KEY_ID", "AWS_REGION", "HOME", "FLOWHOST_HOST"]  # fmt: skip
    (arn,) = run_task(aws, cluster, network, family, ["python", "-c", REPORT, str(report), "3",
                      *names], {"SHARED": "from the override"})  # fmt: skip
    for _ in range(3):  # moto alone would move it towards STOPPED on every describe
        assert describe(aws, cluster, arn)[0]["lastStatus"] == "RUNNING"

    done = ecs.wait_task(arn, timeout=120)
    assert (done.exit_code, done.started_by) == (3, STARTED_BY), str(done)
    assert done.reason == "Essential container in task exited (exit code 3)"
    assert done.command[0] == sys.executable  # ``python`` is the test's interpreter
    assert "build ran" in done.tail
    assert done.log is not None
    assert "build ran" in done.log.read_text()
    (stopped,) = describe(aws, cluster, arn)
    assert (stopped["lastStatus"], stopped["desiredStatus"]) == ("STOPPED", "STOPPED")
    assert stopped["stoppedReason"] == done.reason
    assert stopped["stopCode"] == "EssentialContainerExited"
    assert stopped["containers"][0]["exitCode"] == 3
    assert stopped["stoppedAt"] >= stopped["startedAt"]

    for _ in range(3):
        ecs.sync()
    assert len(ecs.finished_tasks) == 1
    assert ecs.run_tasks() == []
    (line,) = report.read_text().splitlines()  # it ran once
    seen = json.loads(line)
    assert seen["python"] == sys.executable
    env = seen["env"]
    assert (env["FLOWHOST_BUCKET"], env["SHARED"]) == ("platform", "from the override")
    assert json.loads(env["FLOWHOST_PACKAGE_INDEX_CREDENTIALS"])["password"] == "s3cr3t"
    assert env["AWS_ENDPOINT_URL"] == ecs.endpoint
    assert env["AWS_ACCESS_KEY_ID"] not in (None, "testing")  # the task role's own
    assert env["AWS_REGION"] == "us-east-1"
    assert seen["cwd"] == env["HOME"]
    assert Path(env["HOME"]).is_relative_to(ecs.log_dir)
    assert env["FLOWHOST_HOST"].startswith("127.0.0.")
    assert ecs.errors == []


def test_without_an_override_the_definitions_command_runs_and_the_thread_finds_it(
    aws: ClientFactory, network: Network, cluster: str, tmp_path: Path,
    make_emulator: Callable[..., EcsEmulator],
) -> None:  # fmt: skip
    report = tmp_path / "report.jsonl"
    family = register(aws, ["python", "-c", REPORT, str(report), "0", "SHARED"],
                      environment={"SHARED": "definition"})  # fmt: skip
    ecs = make_emulator().start()  # as the suite runs it: nobody calls sync()
    (arn,) = run_task(aws, cluster, network, family)
    deadline = time.monotonic() + 60
    while describe(aws, cluster, arn)[0]["lastStatus"] != "STOPPED":
        assert time.monotonic() < deadline, f"not stopped: {ecs.run_tasks()}"
        time.sleep(0.1)
    (done,) = ecs.finished_tasks
    assert (done.arn, done.exit_code) == (arn, 0)
    assert json.loads(report.read_text())["env"] == {"SHARED": "definition"}
    assert describe(aws, cluster, arn)[0]["containers"][0]["exitCode"] == 0
    assert ecs.errors == []


def test_at_most_two_run_at_once_and_the_others_wait_pending(
    aws: ClientFactory, network: Network, cluster: str, tmp_path: Path,
    make_emulator: Callable[..., EcsEmulator],
) -> None:  # fmt: skip
    gate = tmp_path / "open"
    family = register(aws, ["python", "-c", WAIT_FOR, str(gate)])
    ecs = make_emulator(run_concurrency=2)
    arns = run_task(aws, cluster, network, family, count=3)
    ecs.sync()
    running = [t.arn for t in ecs.run_tasks() if t.process is not None]
    assert len(running) == 2
    (waiting,) = set(arns) - set(running)
    assert waiting == arns[-1]  # first come, first started
    states = {t["taskArn"]: t["lastStatus"] for t in describe(aws, cluster, *arns)}
    assert states == {**dict.fromkeys(running, "RUNNING"), waiting: "PENDING"}
    time.sleep(0.5)
    ecs.sync()  # still closed: nothing finished, the third still waits
    assert (ecs.finished_tasks, len(ecs.run_tasks())) == ([], 3)

    gate.touch()
    done = [ecs.wait_task(arn, timeout=60) for arn in arns]
    assert [d.exit_code for d in done] == [0, 0, 0]
    assert {t["lastStatus"] for t in describe(aws, cluster, *arns)} == {"STOPPED"}
    assert [d.arn for d in ecs.finished_tasks][-1] == waiting  # it started last
    assert ecs.errors == []


def test_a_task_past_its_bound_or_stopped_with_stop_task_gets_sigterm(
    aws: ClientFactory, network: Network, cluster: str, make_emulator: Callable[..., EcsEmulator]
) -> None:
    family = register(aws, ["python", "-c", "import time; time.sleep(120)"])
    ecs = make_emulator(run_timeout=1.0)
    (late,) = run_task(aws, cluster, network, family)
    done = ecs.wait_task(late, timeout=30)
    assert done.exit_code == 143  # SIGTERM, as Docker reports it
    assert done.reason.startswith("ECS emulation: ran past its 1s bound")
    assert describe(aws, cluster, late)[0]["lastStatus"] == "STOPPED"

    ecs = make_emulator()  # no bound to speak of
    (stopped,) = run_task(aws, cluster, network, family)
    ecs.sync()
    assert [t.arn for t in ecs.run_tasks()] == [stopped]
    aws("ecs").stop_task(cluster=cluster, task=stopped, reason="Superseded by a newer build")
    done = ecs.wait_task(stopped, timeout=30)
    assert (done.exit_code, done.reason) == (143, "Superseded by a newer build")
    (record,) = describe(aws, cluster, stopped)
    assert (record["lastStatus"], record["stopCode"]) == ("STOPPED", "UserInitiated")
    assert record["containers"][0]["exitCode"] == 143


def test_a_task_whose_secret_cannot_be_read_never_starts_and_says_why(
    aws: ClientFactory, network: Network, cluster: str, make_emulator: Callable[..., EcsEmulator]
) -> None:
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:no-such-index-AbCdEf"
    family = register(aws, ["python", "-c", "print('never')"],
                      secrets={"FLOWHOST_PACKAGE_INDEX_CREDENTIALS": missing})  # fmt: skip
    ecs = make_emulator()
    (arn,) = run_task(aws, cluster, network, family)
    done = ecs.wait_task(arn, timeout=30)
    assert (done.exit_code, done.log) == (None, None)
    assert done.reason.startswith("ResourceInitializationError: unable to pull secret "
                                  "FLOWHOST_PACKAGE_INDEX_CREDENTIALS")  # fmt: skip
    (record,) = describe(aws, cluster, arn)
    assert (record["lastStatus"], record["stopCode"]) == ("STOPPED", "TaskFailedToStart")
    assert record["stoppedReason"] == done.reason
    assert ecs.errors == []
