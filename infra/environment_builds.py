"""``EnvironmentBuilds``: the Fargate task that builds a service's locked environment.

A build runs where the package index is reachable: a task of the family
``flowhost-<env>-environment-build`` in the platform's cluster and private subnets (the
``builds`` security group: no ingress, HTTPS and HTTP out), started by the control plane
with ``ecs:RunTask``, which appends ``--digest <digest>`` to the container's command
``python -m flowhost.lambdas.environments.job`` (docs/aws.md, "Environment builds"). It
runs the platform's runtime image, reads ``environments/<digest>/request.json`` from the
platform bucket and writes the archive, manifest and build status under ``environments/``.

- the task role may read and write ``environments/*`` of the bucket and use the platform key;
- the execution role (ECS starting the task) may pull the runtime image, write the log
  group ``/flowhost/<env>/environment-builds`` and, for a private index whose credentials
  are in Secrets Manager (``flowhost:packageIndex``), read that one secret, which ECS puts
  in ``FLOWHOST_PACKAGE_INDEX_CREDENTIALS``. Credentials are nowhere else: not in the task
  definition, the control plane's settings or the stack's state.

Both roles carry the services' permissions boundary; they are platform roles
(``flowhost-<env>-builds-*``, no path), not service roles (``/flowhost/<env>/services/``),
so the control plane may pass them by name only. The log group keeps CloudWatch Logs' own
encryption, as every platform log group does (the key policy grants Logs nothing).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from flowhost.infra.boundary import service_log_group_prefix
from flowhost.infra.build_config import EnvironmentBuildSettings, PackageIndexSettings
from flowhost.infra.iam import Account, Statement, assume_role_policy, policy_json
from flowhost.infra.images import pull_statements
from flowhost.infra.tags import Tagging

__all__ = [
    "BUILD_COMMAND",
    "BUILD_CONTAINER",
    "CREDENTIALS_VARIABLE",
    "ENVIRONMENTS_PREFIX",
    "ENV_PLATFORM",
    "ENV_PYTHON",
    "EnvironmentBuilds",
    "EnvironmentBuildsArgs",
    "build_family",
    "build_log_group",
    "container_definitions",
    "execution_statements",
    "task_statements",
]

ENVIRONMENTS_PREFIX = "environments/"  # request, build status, manifest and archives
BUILD_CONTAINER = "build"  # the name RunTask's containerOverrides use
BUILD_COMMAND = ("python", "-m", "flowhost.lambdas.environments.job")
# What the lock is resolved for: the tasks' platform (Fargate X86_64, glibc 2.28+) and the
# runtime image's Python (the Dockerfile's python:3.11).
ENV_PLATFORM = "x86_64-manylinux_2_28"
ENV_PYTHON = "3.11"
INDEX_URL_VARIABLE = "FLOWHOST_PACKAGE_INDEX_URL"
CREDENTIALS_VARIABLE = "FLOWHOST_PACKAGE_INDEX_CREDENTIALS"
TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"


def build_family(environment: str) -> str:
    return f"flowhost-{environment}-environment-build"


def build_log_group(environment: str) -> str:
    """Under the services' log group prefix, which the permissions boundary allows."""
    return f"{service_log_group_prefix(environment)}environment-builds"


@dataclass(frozen=True)
class EnvironmentBuildsArgs:
    account: Account
    bucket_arn: pulumi.Input[str]
    bucket_name: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    image: pulumi.Input[str]  # the platform's runtime image
    permissions_boundary_arn: pulumi.Input[str]
    log_retention_days: int
    tagging: Tagging
    settings: EnvironmentBuildSettings = field(default_factory=EnvironmentBuildSettings)
    package_index: PackageIndexSettings | None = None


def task_statements(
    bucket_arn: pulumi.Input[str], kms_key_arn: pulumi.Input[str]
) -> list[Statement]:
    """What the build job does: read its request, write the archive, manifest and status."""
    return [
        Statement(
            "EnvironmentObjects",
            ["s3:GetObject", "s3:PutObject"],
            [pulumi.Output.concat(bucket_arn, "/", ENVIRONMENTS_PREFIX, "*")],
        ),
        Statement(
            "PlatformKey", ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], [kms_key_arn]
        ),
    ]


def execution_statements(
    args: EnvironmentBuildsArgs, image: str, log_group_arn: pulumi.Input[str]
) -> list[Statement]:
    """What ECS does to start the task: pull ``image`` (resolved), write the log group,
    and read the index's credentials secret when there is one."""
    env = args.tagging.environment
    statements = [
        Statement(
            "OwnLogGroup",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [pulumi.Output.concat(log_group_arn, ":*")],
        ),
        *pull_statements("PullImage", image, args.account.partition, env),
    ]
    if len(statements) > 1:
        # Registry login has no resource-level permissions: AWS requires "*".
        statements.append(Statement("RegistryLogin", ["ecr:GetAuthorizationToken"], ["*"]))
    index = args.package_index
    if index is not None and index.credentials_secret_arn is not None:
        statements.append(
            Statement(
                "IndexCredentials",
                ["secretsmanager:GetSecretValue"],
                [index.credentials_secret_arn],
            )
        )
    return statements


def container_definitions(
    image: str,
    bucket: str,
    kms_key_arn: str,
    log_group: str,
    region: str,
    package_index: PackageIndexSettings | None,
) -> list[dict[str, Any]]:
    """The one container, ``build``, as RegisterTaskDefinition takes it (resolved values)."""
    environment = {
        "AWS_REGION": region,
        "FLOWHOST_BUCKET": bucket,
        "FLOWHOST_KMS_KEY_ARN": kms_key_arn,
    }
    secrets: list[dict[str, str]] = []
    if package_index is not None:
        environment[INDEX_URL_VARIABLE] = package_index.url
        if package_index.credentials_secret_arn is not None:
            secrets.append(
                {"name": CREDENTIALS_VARIABLE, "valueFrom": package_index.credentials_secret_arn}
            )
    container: dict[str, Any] = {
        "name": BUILD_CONTAINER,
        "image": image,
        "essential": True,
        "command": list(BUILD_COMMAND),
        "environment": [{"name": k, "value": environment[k]} for k in sorted(environment)],
        # uv writes its cache and the install target under the task's ephemeral storage.
        "readonlyRootFilesystem": False,
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group,
                "awslogs-region": region,
                "awslogs-stream-prefix": BUILD_CONTAINER,
            },
        },
    }
    if secrets:
        container["secrets"] = secrets
    return [container]


class EnvironmentBuilds(pulumi.ComponentResource):
    """The build task definition, its two roles and its log group."""

    family: str
    task_role_arn: pulumi.Output[str]
    execution_role_arn: pulumi.Output[str]
    log_group_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: EnvironmentBuildsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:EnvironmentBuilds", name, None, opts)
        env, tags = args.tagging.environment, args.tagging.tags
        child = pulumi.ResourceOptions(parent=self)
        logs = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=build_log_group(env),
            retention_in_days=args.log_retention_days,
            tags=tags(f"{name}-logs"),
            opts=child,
        )
        execution_policy = pulumi.Output.from_input(args.image).apply(
            lambda image: policy_json(execution_statements(args, image, logs.arn))
        )
        documents = {
            "task": ("the environment build job", policy_json(
                task_statements(args.bucket_arn, args.kms_key_arn)
            )),
            "execution": ("ECS starting an environment build", execution_policy),
        }  # fmt: skip
        roles: dict[str, aws.iam.Role] = {}
        for key, (what, document) in documents.items():
            roles[key] = aws.iam.Role(
                f"{name}-{key}-role",
                description=f"flowhost {env}: {what}",
                assume_role_policy=assume_role_policy(TASKS_PRINCIPAL),
                permissions_boundary=args.permissions_boundary_arn,
                max_session_duration=3600,
                tags=tags(f"{name}-{key}-role"),
                opts=child,
            )
            aws.iam.RolePolicy(
                f"{name}-{key}-policy", role=roles[key].id, policy=document, opts=child
            )
        definitions = pulumi.Output.all(
            args.image, args.bucket_name, args.kms_key_arn, logs.name, args.account.region
        ).apply(
            lambda v: json.dumps(
                container_definitions(v[0], v[1], v[2], v[3], v[4], args.package_index),
                sort_keys=True,
            )
        )
        size = args.settings
        self.family = build_family(env)
        self.task_definition = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=self.family,
            cpu=str(size.cpu),
            memory=str(size.memory_mib),
            ephemeral_storage={"size_in_gib": size.ephemeral_storage_gib},
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            runtime_platform={"operating_system_family": "LINUX", "cpu_architecture": "X86_64"},
            task_role_arn=roles["task"].arn,
            execution_role_arn=roles["execution"].arn,
            container_definitions=definitions,
            tags=tags(self.family),
            opts=child,
        )
        self._package_index = args.package_index
        self.task_role_arn = roles["task"].arn
        self.execution_role_arn = roles["execution"].arn
        self.log_group_name = logs.name
        self.register_outputs(
            {
                "family": self.task_definition.family,
                "task_role_arn": self.task_role_arn,
                "execution_role_arn": self.execution_role_arn,
                "log_group_name": self.log_group_name,
            }
        )

    def role_arns(self) -> Sequence[pulumi.Output[str]]:
        """The two roles the control plane passes to ECS when it starts a build."""
        return [self.task_role_arn, self.execution_role_arn]

    def function_environment(
        self, subnets: Sequence[pulumi.Input[str]], security_group_id: pulumi.Input[str]
    ) -> dict[str, pulumi.Input[str]]:
        """The control plane's settings for starting builds (``lambdas/aws/settings.py``):
        the family (from the task definition, so the functions wait for it), where the task
        runs, what the lock is resolved for, and the index's URL (never its credentials)."""
        env: dict[str, pulumi.Input[str]] = {
            "FLOWHOST_BUILD_TASK_DEFINITION": self.task_definition.family,
            "FLOWHOST_BUILD_SUBNETS": pulumi.Output.all(*subnets).apply(",".join),
            "FLOWHOST_BUILD_SECURITY_GROUP": security_group_id,
            "FLOWHOST_ENV_PLATFORM": ENV_PLATFORM,
            "FLOWHOST_ENV_PYTHON": ENV_PYTHON,
        }
        if self._package_index is not None:
            env[INDEX_URL_VARIABLE] = self._package_index.url
        return env
