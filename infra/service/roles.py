"""A service's least-privilege roles: the task role and the execution role.

A CPU service's roles are its stack's (``ServiceSpec``) and serve every version the
control plane creates: the task role reads any code package (``packages/sha256-*``, the
digests the control plane records) and any built environment (``environments/*``: the
manifest and archive the container's bootstrap fetches; GPU pods too), and uses every
version's queue and dead-letter queue by pattern (``<queueNamePrefix><service>-v*``). A
GPU service's role (its IRSA role on EKS) names its one version's package and queue. Both
roles carry the platform's permissions boundary and live under the path
``/flowhost/<env>/services/``, the only roles the control plane may pass to ECS. Every
statement names the service's own resources (its code packages, artifact and async
prefixes, queues, log group), except the few shared things a service must reach and
nothing narrower exists for (and the platform's built environments, shared by design):

- the platform key, for S3 only (``kms:ViaService``); for SQS it is conditioned on the
  service's own queue ARNs (``kms:EncryptionContext:aws:sqs:arn``);
- the platform's ADOT collector config parameter and its EMF metrics log group;
- X-Ray's ``PutTraceSegments``/``PutTelemetryRecords``, which AWS authorizes on ``*`` only;
- ``ecr:GetAuthorizationToken`` (``*`` only), when an image is in a private ECR repository.

With the platform's Metaflow settings (``flowhost:metaflow``), the task role reads the
artifact flow's folder under the datastore root (``metaflow_access.datastore_statements``)
instead of the platform bucket's ``metaflow/<flow>/`` folder, and the metadata service's
auth key is read by the execution role (ECS injects it) or, on EKS, by the task role (the
pod's IRSA role; the runtime reads the secret itself). The ADOT collector comes from the
platform's pull-through cache: the execution role may pull it and fill the cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import pulumi
import pulumi_aws as aws

from flowhost.infra.environment_builds import ENVIRONMENTS_PREFIX
from flowhost.infra.iam import (
    Account,
    Statement,
    assume_role_policy,
    policy_json,
    service_role_path,
)
from flowhost.infra.images import pull_statements
from flowhost.infra.metaflow_access import datastore_statements
from flowhost.infra.tags import Tagging

__all__ = [
    "ASYNC_PREFIX",
    "ENVIRONMENTS_PATTERN",
    "METAFLOW_PREFIX",
    "PACKAGES_PATTERN",
    "RoleArgs",
    "ServiceRoles",
    "create_roles",
    "ecr_repository",
    "execution_statements",
    "task_policy",
    "task_statements",
]

ASYNC_PREFIX = "async/"  # as flowhost.infra.storage (the bucket's TTL rule)
# METAFLOW_DATASTORE_SYSROOT_S3 in the platform bucket when the platform has no Metaflow
# settings (flowhost:metaflow): a flow's runs then live under metaflow/<flow>/ there.
METAFLOW_PREFIX = "metaflow/"
# Every code package the control plane may record for a version (package_key's shape).
PACKAGES_PATTERN = "packages/sha256-*"
# Every built environment (manifests and archives, flowhost.infra.environment_builds).
ENVIRONMENTS_PATTERN = f"{ENVIRONMENTS_PREFIX}*"
TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"
ECR_PULL = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9._/-]+?)(?::[\w.-]+)?(?:@sha256:[0-9a-f]{64})?$"
)


def ecr_repository(image: pulumi.Input[str]) -> tuple[str, str, str] | None:
    """(account, region, repository) of a private ECR image reference, else None."""
    if not isinstance(image, str):
        return None
    match = _ECR_IMAGE.match(image)
    return (match["account"], match["region"], match["repository"]) if match else None


@dataclass(frozen=True)
class RoleArgs:
    service: str
    account: Account
    bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    package_key: str  # one package (GPU), or PACKAGES_PATTERN (CPU: every version's)
    artifact_flow: str | None
    queue_name: pulumi.Input[str]  # one queue (GPU), or "<prefix><service>-v*" (CPU)
    log_group_arn: pulumi.Input[str] | None  # None on EKS (no execution role there)
    metrics_log_group: pulumi.Input[str]
    adot_parameter_arn: pulumi.Input[str]
    image: pulumi.Input[str]
    permissions_boundary_arn: pulumi.Input[str]
    tagging: Tagging
    # From PlatformRef: the collector's private image, the Metaflow datastore root and the
    # metadata service's auth key secret ("": the platform has none).
    collector_image: pulumi.Input[str] = ""
    metaflow_datastore_root: pulumi.Input[str] = ""
    metaflow_auth_secret_arn: pulumi.Input[str] = ""


def task_statements(args: RoleArgs) -> list[Statement]:
    """What the serving container and its collector may do."""
    acct, bucket = args.account, args.bucket_arn
    queue_arn = acct.arn("sqs", args.queue_name)
    own_async = f"{ASYNC_PREFIX}{args.service}/"
    statements = [
        Statement(
            "OwnCodePackage",
            ["s3:GetObject"],
            [pulumi.Output.concat(bucket, "/", args.package_key)],
        ),
        Statement(  # Delete: a duplicate delivery removes its own result again
            "OwnAsyncObjects",
            ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
            [pulumi.Output.concat(bucket, "/", own_async, "*")],
        ),
        Statement(
            "OwnQueue",
            [
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:ReceiveMessage",
            ],
            [queue_arn],
        ),
        Statement(
            "OwnQueueKey",
            ["kms:Decrypt", "kms:GenerateDataKey"],
            [args.kms_key_arn],
            conditions={"StringLike": {"kms:EncryptionContext:aws:sqs:arn": queue_arn}},
        ),
        Statement(
            "BucketKey",
            ["kms:Decrypt", "kms:GenerateDataKey"],
            [args.kms_key_arn],
            conditions={
                "StringEquals": {
                    "kms:ViaService": pulumi.Output.concat("s3.", acct.region, ".amazonaws.com")
                }
            },
        ),
        Statement(
            "CollectorMetrics",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [acct.arn("logs", pulumi.Output.concat("log-group:", args.metrics_log_group, ":*"))],
        ),
        # X-Ray has no resource-level permissions for writes: AWS requires "*".
        Statement("Traces", ["xray:PutTelemetryRecords", "xray:PutTraceSegments"], ["*"]),
        Statement(
            "BuiltEnvironments",
            ["s3:GetObject"],
            [pulumi.Output.concat(bucket, "/", ENVIRONMENTS_PATTERN)],
        ),
    ]
    root = args.metaflow_datastore_root
    if args.artifact_flow is not None and isinstance(root, str) and root:
        statements[2:2] = datastore_statements(root, acct.partition, flow=args.artifact_flow)
    elif args.artifact_flow is not None:
        statements.insert(
            2,
            Statement(
                "OwnArtifacts",
                ["s3:GetObject"],
                [pulumi.Output.concat(bucket, "/", METAFLOW_PREFIX, args.artifact_flow, "/*")],
            ),
        )
    secret = args.metaflow_auth_secret_arn
    if args.log_group_arn is None and isinstance(secret, str) and secret:  # EKS: no injection
        statements.append(_auth_key(secret))
    return statements


def _auth_key(secret_arn: str) -> Statement:
    return Statement("MetaflowAuthKey", ["secretsmanager:GetSecretValue"], [secret_arn])


def task_policy(args: RoleArgs) -> pulumi.Output[str]:
    """The task (or IRSA) role's policy, once the platform's Metaflow settings are known."""
    settings = pulumi.Output.all(
        pulumi.Output.from_input(args.metaflow_datastore_root),
        pulumi.Output.from_input(args.metaflow_auth_secret_arn),
    )
    return settings.apply(
        lambda v: policy_json(
            task_statements(
                replace(args, metaflow_datastore_root=v[0], metaflow_auth_secret_arn=v[1])
            )
        )
    )


def execution_statements(args: RoleArgs) -> list[Statement]:
    """What ECS may do to start the task: its log group, the collector config, the image."""
    statements = [Statement("CollectorConfig", ["ssm:GetParameters"], [args.adot_parameter_arn])]
    if args.log_group_arn is not None:
        own_logs = pulumi.Output.concat(args.log_group_arn, ":*")
        statements.insert(
            0, Statement("OwnLogGroup", ["logs:CreateLogStream", "logs:PutLogEvents"], [own_logs])
        )
    found = ecr_repository(args.image)
    if found is not None:
        account, region, repository = found
        statements.append(
            Statement(
                "PullImage",
                ECR_PULL,
                [
                    pulumi.Output.concat(
                        "arn:", args.account.partition, f":ecr:{region}:{account}:repository/",
                        repository,
                    )
                ],
            )
        )  # fmt: skip
    collector = args.collector_image
    if isinstance(collector, str) and collector:
        statements += pull_statements(
            "PullCollector", collector, args.account.partition, args.tagging.environment
        )
    if any(s.sid.startswith("Pull") for s in statements):
        # Registry login has no resource-level permissions: AWS requires "*".
        statements.append(Statement("RegistryLogin", ["ecr:GetAuthorizationToken"], ["*"]))
    secret = args.metaflow_auth_secret_arn
    if isinstance(secret, str) and secret:  # METAFLOW_SERVICE_AUTH_KEY, injected by ECS
        statements.append(_auth_key(secret))
    return statements


@dataclass(frozen=True)
class ServiceRoles:
    task: aws.iam.Role
    execution: aws.iam.Role
    task_policy_json: pulumi.Output[str]


def create_roles(name: str, args: RoleArgs, parent: pulumi.Resource) -> ServiceRoles:
    """Both roles, each with its one inline policy and the platform's boundary."""
    child = pulumi.ResourceOptions(parent=parent)
    task_document = task_policy(args)
    # The image may be an Output (the platform's runtimeImage): the pull grant is decided
    # once its reference is known.
    execution_policy = pulumi.Output.all(
        pulumi.Output.from_input(args.image),
        pulumi.Output.from_input(args.collector_image),
        pulumi.Output.from_input(args.metaflow_auth_secret_arn),
    ).apply(
        lambda v: policy_json(
            execution_statements(
                replace(args, image=v[0], collector_image=v[1], metaflow_auth_secret_arn=v[2])
            )
        )
    )
    roles: list[aws.iam.Role] = []
    for key, what, document in (
        ("task", "the serving container", task_document),
        ("execution", "ECS starting the task", execution_policy),
    ):
        role = aws.iam.Role(
            f"{name}-{key}-role",
            description=f"flowhost service {args.service}: {what}",
            assume_role_policy=assume_role_policy(TASKS_PRINCIPAL),
            path=service_role_path(args.tagging.environment),
            permissions_boundary=args.permissions_boundary_arn,
            max_session_duration=3600,
            tags=args.tagging.tags(f"{name}-{key}-role"),
            opts=child,
        )
        aws.iam.RolePolicy(f"{name}-{key}-policy", role=role.id, policy=document, opts=child)
        roles.append(role)
    return ServiceRoles(task=roles[0], execution=roles[1], task_policy_json=task_document)
