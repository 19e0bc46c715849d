"""The permissions boundary every service role (task and execution roles) is created with.

A user stack writes its own least-privilege policies; the boundary caps what any of
them can ever grant: the platform bucket, queues under the platform's prefix, the
platform key, the services' log groups, tracing and metrics, pulling images.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from flowhost.infra.build_config import PackageIndexSettings
from flowhost.infra.iam import Account, Statement, policy_json
from flowhost.infra.images import CACHE_FILL, cache_prefix
from flowhost.infra.metaflow_access import datastore_statements
from flowhost.infra.metaflow_config import MetaflowSettings
from flowhost.infra.tags import Tagging

__all__ = ["Boundary", "BoundaryArgs", "boundary_statements", "service_log_group_prefix"]


def service_log_group_prefix(environment: str) -> str:
    return f"/flowhost/{environment}/"


@dataclass(frozen=True)
class BoundaryArgs:
    account: Account
    bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    queue_name_prefix: str
    adot_config_arn: pulumi.Input[str]
    tagging: Tagging
    metaflow: MetaflowSettings | None = None  # its datastore root and auth key
    # the private package index, whose credentials the environment build's execution
    # role reads (its own grant says so; the boundary only lets it)
    package_index: PackageIndexSettings | None = None


def boundary_statements(args: BoundaryArgs) -> list[Statement]:
    acct = args.account
    env = args.tagging.environment
    logs = service_log_group_prefix(env)
    metaflow: list[Statement] = []
    if args.metaflow is not None:
        metaflow = datastore_statements(args.metaflow.datastore_root, acct.partition)
        if args.metaflow.auth_secret_arn is not None:
            metaflow.append(
                Statement(
                    "MetaflowAuthKey",
                    ["secretsmanager:GetSecretValue"],
                    [args.metaflow.auth_secret_arn],
                )
            )
    index = args.package_index
    if index is not None and index.credentials_secret_arn is not None:
        metaflow.append(
            Statement(
                "PackageIndexCredentials",
                ["secretsmanager:GetSecretValue"],
                [index.credentials_secret_arn],
            )
        )
    return [
        *metaflow,
        Statement(
            "PlatformBucketObjects",
            ["s3:DeleteObject", "s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
            [pulumi.Output.concat(args.bucket_arn, "/*")],
        ),
        Statement("PlatformBucketListing", ["s3:ListBucket"], [args.bucket_arn]),
        Statement(
            "PlatformQueues",
            [
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:ReceiveMessage",
                "sqs:SendMessage",
            ],
            [acct.arn("sqs", f"{args.queue_name_prefix}*")],
        ),
        Statement(
            "PlatformKey",
            ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
            [args.kms_key_arn],
        ),
        Statement(
            "ServiceLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [acct.arn("logs", f"log-group:{logs}*")],
        ),
        Statement("TracingConfig", ["ssm:GetParameters"], [args.adot_config_arn]),
        Statement(
            "ImagesFromThisAccount",
            ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            [acct.arn("ecr", "repository/*")],
        ),
        Statement(  # the first pull of an image through the platform's pull-through cache
            "FillImageCache", CACHE_FILL, [acct.arn("ecr", f"repository/{cache_prefix(env)}/*")]
        ),
        # No resource-level permissions exist for these actions: AWS requires "*".
        Statement(
            "RegistryLogin",
            ["ecr:GetAuthorizationToken"],
            ["*"],
        ),
        Statement(
            "Traces",
            [
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:PutTelemetryRecords",
                "xray:PutTraceSegments",
            ],
            ["*"],
        ),
        Statement(
            "Metrics",
            ["cloudwatch:PutMetricData"],
            ["*"],
            conditions={"StringLike": {"cloudwatch:namespace": "flowhost/*"}},
        ),
    ]


class Boundary(pulumi.ComponentResource):
    """The managed policy used as ``permissions_boundary`` on every service role."""

    def __init__(
        self, name: str, args: BoundaryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:Boundary", name, None, opts)
        policy = aws.iam.Policy(
            f"{name}-policy",
            description="flowhost: the most any service role may be granted",
            policy=policy_json(boundary_statements(args)),
            tags=args.tagging.tags(f"{name}-policy"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.policy_arn = policy.arn
        self.register_outputs({"policy_arn": policy.arn})
