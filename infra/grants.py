"""What each control-plane Lambda may do, as IAM statements scoped to the platform's resources.

Every statement names the platform's own ARNs (or ARN patterns under its prefixes).
``"*"`` appears only for actions AWS offers no resource-level permission for, each
marked below: X-Ray writes, CloudWatch metric reads, the ALB ``Describe*`` reads, and
the ECS task definition and autoscaling reads (``provision``).
(ENI management for Lambdas in a VPC comes from AWS's managed
``AWSLambdaVPCAccessExecutionRole``, attached in :mod:`flowhost.infra.functions`.)
Running counts come from ``ecs:DescribeServices`` (no ``ecs:ListTasks``, which AWS
authorizes only on ``*``).

The API function and the scaler also own every version's resources (``provision``):
they read services' envelopes (``/flowhost/<env>/services/*``), register task
definitions (family ``flowhost-<env>-*``), create and delete ECS services in the
platform's cluster, target groups named ``<env>-*``, listener rules, queues under the
platform's prefix and autoscaling targets of ECS services, and pass the service roles
(path ``/flowhost/<env>/services/``) to ECS tasks only. They start environment builds
(``builds``): ``ecs:RunTask`` of the build task definition's family in the platform's
cluster only (tagging the tasks it starts), passing its two roles to ECS tasks only; they
follow a build with ``ecs:DescribeTasks`` on the cluster's tasks (``ReadTasks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from flowhost.infra.iam import Account, Statement
from flowhost.infra.version_grants import provision_statements

__all__ = ["Grants"]


@dataclass(frozen=True)
class Grants:
    account: Account
    bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    db_secret_arn: pulumi.Input[str]
    callback_secret_arn: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    listener_arn: pulumi.Output[str]
    queue_name_prefix: str
    environment: str
    # The environment build task definition's family and the roles a build runs with.
    build_family: str = ""
    build_role_arns: Sequence[pulumi.Input[str]] = ()

    def api(self) -> list[Statement]:
        """Deployments API and async request API: state, objects, queues, scaling, routes."""
        return [
            *self._state(),
            *self._objects(),
            self._queues(manage=True),
            *self._scaling(),
            *self._routes(),
            self._callback_key(),
            *self._runtime(),
            *self.provision(),
            *self.builds(),
        ]

    def activator(self) -> list[Statement]:
        """Starts a version at zero, holds the request, points the route back."""
        return [*self._state(), *self._scaling(), *self._routes(), *self._runtime()]

    def scaler(self) -> list[Statement]:
        """Reads load and backlogs, scales versions, sweeps expired async results."""
        return [
            *self._state(),
            *self._objects(),
            self._queues(manage=False),
            *self._scaling(),
            *self._routes(),
            # CloudWatch metric reads have no resource-level permissions: AWS requires "*".
            Statement("ReadMetrics", ["cloudwatch:GetMetricData"], ["*"]),
            self._callback_key(),
            *self._runtime(),
            *self.provision(),
            *self.builds(),
        ]

    def _state(self) -> list[Statement]:
        return [
            Statement(
                "DatabaseCredentials",
                ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
                [self.db_secret_arn],
            ),
            Statement(
                "PlatformKey",
                ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                [self.kms_key_arn],
            ),
        ]

    def _callback_key(self) -> Statement:
        """The async API and the scaler sign callbacks; the activator sends none."""
        return Statement(
            "CallbackSigningKey", ["secretsmanager:GetSecretValue"], [self.callback_secret_arn]
        )

    def _objects(self) -> list[Statement]:
        return [
            Statement(
                "PlatformBucketObjects",
                ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
                [pulumi.Output.concat(self.bucket_arn, "/*")],
            ),
            Statement("PlatformBucketListing", ["s3:ListBucket"], [self.bucket_arn]),
        ]

    def _queues(self, *, manage: bool) -> Statement:
        actions = [
            "sqs:ChangeMessageVisibility",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:GetQueueUrl",
            "sqs:ReceiveMessage",
        ]
        if manage:  # the async API creates each version's queue pair on first use
            actions += [
                "sqs:CreateQueue",
                "sqs:DeleteQueue",
                "sqs:SendMessage",
                "sqs:SetQueueAttributes",
                "sqs:TagQueue",
            ]
        return Statement(
            "PlatformQueues", actions, [self.account.arn("sqs", f"{self.queue_name_prefix}*")]
        )

    def _scaling(self) -> list[Statement]:
        return [
            Statement(
                "ScaleServices",
                ["ecs:DescribeServices", "ecs:UpdateService"],
                [
                    self.account.arn(
                        "ecs", pulumi.Output.concat("service/", self.cluster_name, "/*")
                    )
                ],
            ),
            Statement(
                "ReadTasks",
                ["ecs:DescribeTasks"],
                [self.account.arn("ecs", pulumi.Output.concat("task/", self.cluster_name, "/*"))],
            ),
        ]

    def _routes(self) -> list[Statement]:
        rules = self.listener_arn.apply(
            lambda arn: arn.replace(":listener/", ":listener-rule/", 1) + "/*"
        )
        return [
            Statement("CreateRoutes", ["elasticloadbalancing:CreateRule"], [self.listener_arn]),
            Statement(
                "ChangeRoutes",
                [
                    "elasticloadbalancing:AddTags",
                    "elasticloadbalancing:DeleteRule",
                    "elasticloadbalancing:ModifyRule",
                    "elasticloadbalancing:SetRulePriorities",
                ],
                [rules],
            ),
            # ALB Describe* calls have no resource-level permissions: AWS requires "*".
            Statement(
                "ReadRoutes",
                [
                    "elasticloadbalancing:DescribeListeners",
                    "elasticloadbalancing:DescribeRules",
                    "elasticloadbalancing:DescribeTargetGroups",
                    "elasticloadbalancing:DescribeTargetHealth",
                ],
                ["*"],
            ),
        ]

    def _runtime(self) -> list[Statement]:
        return [
            # X-Ray writes have no resource-level permissions: AWS requires "*".
            Statement("Traces", ["xray:PutTelemetryRecords", "xray:PutTraceSegments"], ["*"]),
        ]

    def provision(self) -> list[Statement]:
        """Creating and removing versions' resources from their services' envelopes."""
        return provision_statements(
            self.account, self.environment, self.cluster_name, self.queue_name_prefix
        )

    def builds(self) -> list[Statement]:
        """Starting an environment build (none without a build family)."""
        if not self.build_family:
            return []
        cluster = pulumi.Output.concat("cluster/", self.cluster_name)
        return [
            Statement(
                "RunEnvironmentBuilds",
                ["ecs:RunTask"],
                [self.account.arn("ecs", f"task-definition/{self.build_family}:*")],
                conditions={"ArnEquals": {"ecs:cluster": self.account.arn("ecs", cluster)}},
            ),
            # RunTask's tags (the build's digest) are authorized as ecs:TagResource on the task.
            Statement(
                "TagBuildTasks",
                ["ecs:TagResource"],
                [self.account.arn("ecs", pulumi.Output.concat("task/", self.cluster_name, "/*"))],
                conditions={"StringEquals": {"ecs:CreateAction": "RunTask"}},
            ),
            Statement(
                "PassBuildRoles",
                ["iam:PassRole"],
                list(self.build_role_arns),
                conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
            ),
        ]
