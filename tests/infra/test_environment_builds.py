"""Component tier: the platform stack runs environment builds (infra/environment_builds.py).

- the build task definition, against botocore's RegisterTaskDefinition shape, with the
  platform's runtime image, the job's command, its size from config and awslogs;
- its two roles: what each may do (parliament-clean), their boundary and path; every
  action they have is one the services' permissions boundary allows;
- the control plane: its build settings (env vars) and its RunTask / TagResource /
  PassRole grants, scoped to the family, the cluster and the two roles;
- a private index: its URL reaches the task and the control plane, its credentials secret
  only the task's ``secrets`` and the execution role; no credentials anywhere in the plan;
- a GPU service's pod: the environment cache (an emptyDir) and the pinned digest.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import re
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from flowhost.infra import ServiceSpec
from flowhost.infra.environment_builds import (
    BUILD_COMMAND,
    CREDENTIALS_VARIABLE,
    ENV_PLATFORM,
    ENV_PYTHON,
)
from tests.infra.recording import ACCOUNT_ID, REGION, PlatformRun, Recorded, run_program
from tests.infra.recording import stack_config as stack_file
from tests.infra.services.example.tiny import Big
from tests.infra.services.harness import platform, run_services
from tests.infra.test_documents import as_list, findings_above_low
from tests.infra.test_policy_pack import as_policy_resource, pack_config
from tests.policies.loader import load_policy_pack

load_policy_pack()

from policies.engine import evaluate  # noqa: E402

TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
FUNCTION = "aws:lambda/function:Function"
INDEX_URL = "https://pypi.internal.example.com/simple"
INDEX_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:pypi-credentials-AbCdEf"
DIGEST = "sha256-" + "e7" * 32


@pytest.fixture(scope="module")
def indexed() -> PlatformRun:
    """The dev stack with a private index whose credentials are in Secrets Manager."""
    config = stack_file("dev") | {
        "flowhost:packageIndex": json.dumps(
            {"url": INDEX_URL, "credentialsSecretArn": INDEX_SECRET}
        ),
        "flowhost:environmentBuild": json.dumps(
            {"cpu": 2048, "memoryMib": 8192, "ephemeralStorageGib": 100}
        ),
    }
    return run_program("dev", config)


def task_definition(run: PlatformRun) -> Recorded:
    (found,) = run.of_type(TASK_DEFINITION)
    return found


def register_request(task: Recorded) -> dict[str, Any]:
    """The RegisterTaskDefinition request the provider makes from the recorded inputs."""
    inputs = task.inputs
    return {
        "family": inputs["family"],
        "taskRoleArn": inputs["taskRoleArn"],
        "executionRoleArn": inputs["executionRoleArn"],
        "networkMode": inputs["networkMode"],
        "requiresCompatibilities": inputs["requiresCompatibilities"],
        "cpu": inputs["cpu"],
        "memory": inputs["memory"],
        "ephemeralStorage": {"sizeInGiB": int(inputs["ephemeralStorage"]["sizeInGib"])},
        "runtimePlatform": {
            "operatingSystemFamily": inputs["runtimePlatform"]["operatingSystemFamily"],
            "cpuArchitecture": inputs["runtimePlatform"]["cpuArchitecture"],
        },
        "containerDefinitions": json.loads(inputs["containerDefinitions"]),
        "tags": [{"key": k, "value": v} for k, v in inputs["tags"].items()],
    }


def is_valid_for_ecs(request: dict[str, Any]) -> None:
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    assert shape is not None
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()


def statements(run: PlatformRun, name: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in json.loads(run.named(name).inputs["policy"])["Statement"]}


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("environment", [])}


def test_the_build_task_definition_is_what_ecs_accepts(stack: PlatformRun) -> None:
    env = stack.outputs["environment"]
    request = register_request(task_definition(stack))
    is_valid_for_ecs(request)
    assert request["family"] == f"flowhost-{env}-environment-build"
    assert (request["cpu"], request["memory"], request["ephemeralStorage"]) == (
        "1024", "4096", {"sizeInGiB": 40}
    )  # fmt: skip
    assert request["runtimePlatform"] == {
        "operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"
    }  # fmt: skip
    assert (request["networkMode"], request["requiresCompatibilities"]) == ("awsvpc", ["FARGATE"])
    (build,) = request["containerDefinitions"]
    assert build["name"] == "build"  # RunTask's containerOverrides name it
    assert build["image"] == stack.outputs["runtimeImage"]
    assert build["command"] == ["python", "-m", "flowhost.lambdas.environments.job"]
    assert tuple(build["command"]) == BUILD_COMMAND
    assert build["essential"] is True
    assert build["readonlyRootFilesystem"] is False
    assert env_of(build) == {
        "AWS_REGION": REGION,
        "FLOWHOST_BUCKET": stack.outputs["bucketName"],
        "FLOWHOST_KMS_KEY_ARN": stack.outputs["kmsKeyArn"],
    }
    assert "secrets" not in build  # no private index configured
    log = build["logConfiguration"]
    assert log == {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": f"/flowhost/{env}/environment-builds",
            "awslogs-region": REGION,
            "awslogs-stream-prefix": "build",
        },
    }
    group = stack.named(f"flowhost-{env}-builds-logs")
    assert group.inputs["name"] == log["options"]["awslogs-group"]
    assert group.inputs["retentionInDays"] == {"dev": 14, "prod": 90}[env]
    roles = {k: stack.named(f"flowhost-{env}-builds-{k}-role") for k in ("task", "execution")}
    assert request["taskRoleArn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{roles['task'].name}"
    assert request["executionRoleArn"].endswith(f"/{roles['execution'].name}")


def test_the_size_comes_from_config_and_a_bad_one_would_be_refused(indexed: PlatformRun) -> None:
    request = register_request(task_definition(indexed))
    is_valid_for_ecs(request)
    assert (request["cpu"], request["memory"], request["ephemeralStorage"]) == (
        "2048", "8192", {"sizeInGiB": 100}
    )  # fmt: skip
    broken = {**request, "ephemeralStorage": {"sizeInGiB": "forty"}}
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    assert shape is not None
    assert ParamValidator().validate(broken, shape).has_errors()  # the check can fail


def test_the_build_roles_do_only_what_a_build_needs(stack: PlatformRun) -> None:
    env = stack.outputs["environment"]
    bucket, key = stack.outputs["bucketArn"], stack.outputs["kmsKeyArn"]
    task = statements(stack, f"flowhost-{env}-builds-task-policy")
    assert task == {
        "EnvironmentObjects": {
            "Sid": "EnvironmentObjects", "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"{bucket}/environments/*",
        },
        "PlatformKey": {
            "Sid": "PlatformKey", "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], "Resource": key,
        },
    }  # fmt: skip
    execution = statements(stack, f"flowhost-{env}-builds-execution-policy")
    assert set(execution) == {"OwnLogGroup", "PullImage", "RegistryLogin"}
    logs = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/flowhost/{env}/environment-builds:*"
    assert execution["OwnLogGroup"]["Resource"] == logs
    repository = f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/flowhost-{env}-runtime"
    assert execution["PullImage"]["Resource"] == repository
    assert execution["RegistryLogin"]["Action"] == ["ecr:GetAuthorizationToken"]
    for key_ in ("task", "execution"):
        role = stack.named(f"flowhost-{env}-builds-{key_}-role").inputs
        assert role["permissionsBoundary"] == stack.outputs["servicePermissionsBoundaryArn"]
        # A platform role (ci-deploy manages flowhost-<env>-*), not a service role: the
        # control plane's PassServiceRoles (by the services' path) does not cover it.
        assert "path" not in role
        trust = json.loads(role["assumeRolePolicy"])["Statement"]
        assert [s["Principal"] for s in trust] == [{"Service": "ecs-tasks.amazonaws.com"}]
        document = json.loads(stack.named(f"flowhost-{env}-builds-{key_}-policy").inputs["policy"])
        assert findings_above_low(document, "identity") == []


def boundary_allows(run: PlatformRun, action: str, resource: str) -> bool:
    env = run.outputs["environment"]
    boundary = json.loads(run.named(f"flowhost-{env}-boundary-policy").inputs["policy"])
    return any(
        action in as_list(s["Action"])
        and any(fnmatch.fnmatchcase(resource, p) for p in as_list(s["Resource"]))
        for s in boundary["Statement"]
    )


def build_grants(run: PlatformRun) -> list[tuple[str, str, str]]:
    """(Sid, action, resource) of every build role statement (``*`` read as a sample ARN)."""
    env = run.outputs["environment"]
    found: list[tuple[str, str, str]] = []
    for key in ("task", "execution"):
        for sid, s in statements(run, f"flowhost-{env}-builds-{key}-policy").items():
            for action in as_list(s["Action"]):
                for resource in as_list(s["Resource"]):
                    found.append((sid, action, resource.replace("*", "sha256-x/build.json")))
    return found


def test_every_build_grant_is_within_the_permissions_boundary(stack: PlatformRun) -> None:
    outside = [g for g in build_grants(stack) if not boundary_allows(stack, g[1], g[2])]
    assert outside == []


def test_the_boundary_lets_the_execution_role_read_the_index_secret(
    indexed: PlatformRun,
) -> None:
    assert boundary_allows(indexed, "secretsmanager:GetSecretValue", INDEX_SECRET)


def test_the_control_plane_knows_where_builds_run(stack: PlatformRun) -> None:
    env = stack.outputs["environment"]
    task = task_definition(stack)
    builds_sg = stack.named(f"flowhost-{env}-net-builds")
    for fn in stack.of_type(FUNCTION):
        variables = fn.inputs["environment"]["variables"]
        assert variables["FLOWHOST_BUILD_TASK_DEFINITION"] == f"flowhost-{env}-environment-build"
        assert variables["FLOWHOST_BUILD_SUBNETS"] == ",".join(stack.outputs["privateSubnetIds"])
        assert variables["FLOWHOST_BUILD_SECURITY_GROUP"] == builds_sg.id
        assert variables["FLOWHOST_ENV_PLATFORM"] == ENV_PLATFORM == "x86_64-manylinux_2_28"
        assert variables["FLOWHOST_ENV_PYTHON"] == ENV_PYTHON == "3.11"
        assert "FLOWHOST_PACKAGE_INDEX_URL" not in variables
        # The family comes from the task definition: a build never starts before it exists.
        assert task.urn in fn.property_dependencies["environment"], fn.name


def test_the_control_plane_reads_the_build_settings_the_stack_sets(
    stack: PlatformRun, indexed: PlatformRun
) -> None:
    """Across the seam: the functions' variables, read by the control plane's own settings
    (lambdas/aws/settings.py), and its RunTask request (lambdas/aws/builds.py) naming the
    container and command the task definition has."""
    from flowhost.lambdas.aws.settings import AwsSettings

    for run, index in ((stack, None), (indexed, INDEX_URL)):
        env = run.outputs["environment"]
        (fn, *_) = run.of_type(FUNCTION)
        read = AwsSettings.from_env(fn.inputs["environment"]["variables"]).model_dump()
        assert read["build_task_definition"] == f"flowhost-{env}-environment-build"
        assert read["build_subnets"].split(",") == run.outputs["privateSubnetIds"]
        assert read["build_security_group"] == run.named(f"flowhost-{env}-net-builds").id
        assert (read["env_platform"], read["env_python"]) == (ENV_PLATFORM, ENV_PYTHON)
        assert read["package_index_url"] == index
    builds = pytest.importorskip("flowhost.lambdas.aws.builds")
    (build,) = json.loads(task_definition(stack).inputs["containerDefinitions"])
    assert build["name"] == builds.BUILD_CONTAINER
    assert tuple(builds.COMMAND) == tuple(build["command"])


def arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{resource}"


def test_the_api_and_the_scaler_may_start_builds_and_nothing_else(stack: PlatformRun) -> None:
    env = stack.outputs["environment"]
    cluster = arn("ecs", f"cluster/flowhost-{env}")
    roles = [
        f"arn:aws:iam::{ACCOUNT_ID}:role/{stack.named(f'flowhost-{env}-builds-{k}-role').name}"
        for k in ("task", "execution")
    ]
    for key in ("api", "scaler"):
        found = statements(stack, f"flowhost-{env}-fn-{key}-policy")
        run = found["RunEnvironmentBuilds"]
        assert run["Action"] == ["ecs:RunTask"]
        assert run["Resource"] == arn("ecs", f"task-definition/flowhost-{env}-environment-build:*")
        assert run["Condition"] == {"ArnEquals": {"ecs:cluster": cluster}}
        assert not fnmatch.fnmatchcase(
            arn("ecs", f"task-definition/flowhost-{env}-tiny-v3:1"), run["Resource"]
        )
        tag = found["TagBuildTasks"]
        assert (tag["Action"], tag["Resource"]) == (
            ["ecs:TagResource"], arn("ecs", f"task/flowhost-{env}/*")
        )  # fmt: skip
        assert tag["Condition"] == {"StringEquals": {"ecs:CreateAction": "RunTask"}}
        passing = found["PassBuildRoles"]
        assert (passing["Action"], passing["Resource"]) == (["iam:PassRole"], roles)
        assert passing["Condition"] == {
            "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
        }
        reading = found["ReadTasks"]  # following a build
        assert (reading["Action"], reading["Resource"]) == (
            ["ecs:DescribeTasks"], arn("ecs", f"task/flowhost-{env}/*")
        )  # fmt: skip
    activator = statements(stack, f"flowhost-{env}-fn-activator-policy")
    assert not {"RunEnvironmentBuilds", "TagBuildTasks", "PassBuildRoles"} & set(activator)


def test_a_private_index_reaches_the_build_and_its_credentials_stay_in_their_secret(
    indexed: PlatformRun,
) -> None:
    (build,) = json.loads(task_definition(indexed).inputs["containerDefinitions"])
    assert env_of(build)["FLOWHOST_PACKAGE_INDEX_URL"] == INDEX_URL
    assert build["secrets"] == [{"name": CREDENTIALS_VARIABLE, "valueFrom": INDEX_SECRET}]
    execution = statements(indexed, "flowhost-dev-builds-execution-policy")
    assert execution["IndexCredentials"] == {
        "Sid": "IndexCredentials", "Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue"], "Resource": INDEX_SECRET,
    }  # fmt: skip
    for fn in indexed.of_type(FUNCTION):
        variables = fn.inputs["environment"]["variables"]
        assert variables["FLOWHOST_PACKAGE_INDEX_URL"] == INDEX_URL
        assert INDEX_SECRET not in json.dumps(variables)  # the control plane never reads it
    # Only the task definition (an ARN to resolve), the execution role and the boundary
    # that lets it name the secret.
    naming = sorted(
        r.name for r in indexed.resources if INDEX_SECRET in json.dumps(r.inputs, default=str)
    )
    assert naming == [
        "flowhost-dev-boundary-policy",
        "flowhost-dev-builds-execution-policy",
        "flowhost-dev-builds-task",
    ]
    # No resource holds credentials: no URL with user:password@, no secret value for the
    # index (the one secret version is the callback key's), and the credentials variable
    # only as the name ECS fills from the secret.
    plan = json.dumps([r.inputs for r in indexed.resources], default=str)
    assert re.findall(r"://[^/\s\"@]+@", plan) == []
    assert plan.count(CREDENTIALS_VARIABLE) == 1
    (version,) = indexed.of_type("aws:secretsmanager/secretVersion:SecretVersion")
    assert version.name.startswith("flowhost-dev-callbacks")
    for key in ("task", "execution"):
        document = json.loads(indexed.named(f"flowhost-dev-builds-{key}-policy").inputs["policy"])
        assert findings_above_low(document, "identity") == []


def ci_allows(document: dict[str, Any], action: str, resource: str) -> bool:
    """An Allow of ``action`` on ``resource`` and no Deny of it (conditions aside)."""

    def matches(s: dict[str, Any]) -> bool:
        return action in as_list(s["Action"]) and any(
            fnmatch.fnmatchcase(resource, p) for p in as_list(s["Resource"])
        )

    found = [s for s in document["Statement"] if matches(s)]
    return any(s["Effect"] == "Allow" for s in found) and all(s["Effect"] == "Allow" for s in found)


def test_ci_deploy_may_create_what_builds_need() -> None:
    """``pulumi up`` from CI (infra/ci_grants.py) creates the build roles, passes them to the
    task definition, registers it and creates its log group."""
    config = stack_file("dev") | {
        "flowhost:githubRepository": "acme/models",
        "flowhost:pulumiStateBackend": "s3://acme-pulumi/flowhost",
    }
    run = run_program("dev", config)
    deploy = json.loads(run.named("flowhost-dev-ci-deploy-policy").inputs["policy"])
    roles = [
        f"arn:aws:iam::{ACCOUNT_ID}:role/{run.named(f'flowhost-dev-builds-{k}-role').name}"
        for k in ("task", "execution")
    ]
    for role in roles:
        for action in ("iam:CreateRole", "iam:PutRolePolicy", "iam:PassRole", "iam:TagRole"):
            assert ci_allows(deploy, action, role), (action, role)
    family = arn("ecs", "task-definition/flowhost-dev-environment-build:1")
    assert ci_allows(deploy, "ecs:RegisterTaskDefinition", family)
    group = arn("logs", "log-group:/flowhost/dev/environment-builds")
    assert ci_allows(deploy, "logs:CreateLogGroup", group)


def test_the_stack_with_an_index_passes_the_policy_pack(indexed: PlatformRun) -> None:
    resources = [as_policy_resource(r) for r in indexed.resources if r.custom]
    violations = evaluate(resources, pack_config("dev"))
    assert violations == [], "\n".join(f"{v.policy}: {v.message}" for v in violations)


def test_the_pack_refuses_credentials_put_in_the_build_task(indexed: PlatformRun) -> None:
    task = task_definition(indexed)
    (build,) = json.loads(task.inputs["containerDefinitions"])
    plain = {"name": CREDENTIALS_VARIABLE, "value": '{"username": "ci", "password": "pw"}'}
    build["environment"].append(plain)
    broken = dataclasses.replace(
        task, inputs={**task.inputs, "containerDefinitions": json.dumps([build])}
    )
    resources = [as_policy_resource(broken if r is task else r) for r in indexed.resources]
    failed = {v.policy for v in evaluate(resources, pack_config("dev"))}
    assert failed == {"no-plaintext-credentials-in-environment"}


@pytest.fixture(scope="module")
def gpu_run() -> PlatformRun:
    return run_services(
        lambda: {
            "role": ServiceSpec(
                "big", spec=Big, platform=platform(eks=True), environment_digest=DIGEST
            ).task_role_arn
        }
    )


def test_a_gpu_pod_unpacks_its_environment_into_its_own_cache(gpu_run: PlatformRun) -> None:
    (deployment,) = gpu_run.of_type("kubernetes:apps/v1:Deployment")
    pod = deployment.inputs["spec"]["template"]["spec"]
    (serving,) = pod["containers"]
    variables = {e["name"]: e["value"] for e in serving["env"]}
    assert variables["FLOWHOST_ENVIRONMENT_DIGEST"] == DIGEST
    assert variables["FLOWHOST_ENV_CACHE"] == "/tmp/flowhost/envs"
    mounts = {m["name"]: m["mountPath"] for m in serving["volumeMounts"]}
    assert mounts["envs"] == variables["FLOWHOST_ENV_CACHE"]
    assert {"name": "envs", "emptyDir": {}} in pod["volumes"]
    (policy,) = [
        r for r in gpu_run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == "big-gpu-policy"
    ]
    by_sid = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    assert by_sid["BuiltEnvironments"]["Action"] == ["s3:GetObject"]
    assert by_sid["BuiltEnvironments"]["Resource"].endswith("/environments/*")


def test_without_a_digest_the_pod_names_no_environment() -> None:
    run = run_services(
        lambda: {"role": ServiceSpec("big", spec=Big, platform=platform(eks=True)).task_role_arn}
    )
    (deployment,) = run.of_type("kubernetes:apps/v1:Deployment")
    (serving,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
    names = {e["name"] for e in serving["env"]}
    assert "FLOWHOST_ENVIRONMENT_DIGEST" not in names
    assert "FLOWHOST_ENV_CACHE" in names  # the cache is there for the bootstrap either way
