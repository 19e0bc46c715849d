"""What the control plane may do to own every version (``Grants.provision``).

The API function and the scaler create and remove each version's resources from its
service's envelope (``flowhost.lambdas.aws.provision``): they read envelopes
(``/flowhost/<env>/services/*``), register task definitions (family
``flowhost-<env>-*``), create and delete ECS services in the platform's cluster, target
groups named ``<env>-*``, queues under the platform's prefix, autoscaling targets of ECS
services and their target-tracking alarms, and pass the service roles (path
``/flowhost/<env>/services/``) to ECS tasks only. ``"*"`` only where AWS offers no
resource, each marked.
"""

from __future__ import annotations

import pulumi

from flowhost.infra.iam import Account, Statement, service_role_path
from flowhost.services.envelope import ENVELOPE_ROOT

__all__ = ["AUTOSCALING_ECS", "provision_statements"]

AUTOSCALING_ECS = "ecs.application-autoscaling.amazonaws.com"
AUTOSCALING_ECS_ROLE = "AWSServiceRoleForApplicationAutoScaling_ECSService"


def provision_statements(
    acct: Account, env: str, cluster_name: pulumi.Input[str], queue_name_prefix: str
) -> list[Statement]:
    """Creating and removing versions' resources from their services' envelopes."""
    cluster = pulumi.Output.concat("cluster/", cluster_name)
    envelopes = ENVELOPE_ROOT.format(environment=env).lstrip("/")
    autoscaling = {
        "StringEquals": {
            "application-autoscaling:scalable-dimension": "ecs:service:DesiredCount",
            "application-autoscaling:service-namespace": "ecs",
        }
    }
    return [
        Statement(
            "ReadEnvelopes", ["ssm:GetParameter"], [acct.arn("ssm", f"parameter/{envelopes}*")]
        ),
        Statement(
            "RegisterTaskDefinitions",
            ["ecs:RegisterTaskDefinition"],
            [acct.arn("ecs", f"task-definition/flowhost-{env}-*:*")],
        ),
        # Task definition reads and deregistration have no resource-level permissions.
        Statement(
            "TaskDefinitions",
            [
                "ecs:DeregisterTaskDefinition",
                "ecs:DescribeTaskDefinition",
                "ecs:ListTaskDefinitions",
            ],
            ["*"],
        ),
        Statement(
            "CreateServices",
            ["ecs:CreateService", "ecs:DeleteService"],
            [acct.arn("ecs", pulumi.Output.concat("service/", cluster_name, "/*"))],
        ),
        Statement(
            "TagOnCreate",
            ["ecs:TagResource"],
            [
                acct.arn("ecs", pulumi.Output.concat("service/", cluster_name, "/*")),
                acct.arn("ecs", f"task-definition/flowhost-{env}-*:*"),
            ],
            conditions={
                "StringEquals": {"ecs:CreateAction": ["CreateService", "RegisterTaskDefinition"]}
            },
        ),
        # ListServices takes no resource; its ecs:cluster condition names the cluster.
        Statement(
            "ListServices",
            ["ecs:ListServices"],
            ["*"],
            conditions={"ArnEquals": {"ecs:cluster": acct.arn("ecs", cluster)}},
        ),
        Statement(
            "VersionTargetGroups",
            [
                "elasticloadbalancing:AddTags",
                "elasticloadbalancing:CreateTargetGroup",
                "elasticloadbalancing:DeleteTargetGroup",
                "elasticloadbalancing:ModifyTargetGroupAttributes",
            ],
            [acct.arn("elasticloadbalancing", f"targetgroup/{env}-*/*")],
        ),
        Statement(
            "VersionScaling",
            [
                "application-autoscaling:DeregisterScalableTarget",
                "application-autoscaling:PutScalingPolicy",
                "application-autoscaling:RegisterScalableTarget",
            ],
            [acct.arn("application-autoscaling", "scalable-target/*")],
            conditions=autoscaling,
        ),
        # Target tracking's alarms, which Application Auto Scaling creates and deletes
        # with the caller's permissions: TargetTracking-service/<cluster>/<service>-...
        Statement(
            "TargetTrackingAlarms",
            [
                "cloudwatch:DeleteAlarms",
                "cloudwatch:DescribeAlarms",
                "cloudwatch:PutMetricAlarm",
            ],
            [
                acct.arn(
                    "cloudwatch",
                    pulumi.Output.concat("alarm:TargetTracking-service/", cluster_name, "/*"),
                )
            ],
        ),
        # Autoscaling reads have no resource-level permissions: AWS requires "*".
        Statement("ReadScaling", ["application-autoscaling:DescribeScalableTargets"], ["*"]),
        Statement(
            "AutoscalingServiceRole",
            ["iam:CreateServiceLinkedRole"],
            [
                pulumi.Output.concat(
                    "arn:",
                    acct.partition,
                    ":iam::",
                    acct.account_id,
                    ":role/aws-service-role/",
                    AUTOSCALING_ECS,
                    "/",
                    AUTOSCALING_ECS_ROLE,
                )
            ],
            conditions={"StringEquals": {"iam:AWSServiceName": AUTOSCALING_ECS}},
        ),
        Statement(
            "VersionQueues",
            [
                "sqs:CreateQueue",
                "sqs:DeleteQueue",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:SetQueueAttributes",
                "sqs:TagQueue",
            ],
            [acct.arn("sqs", f"{queue_name_prefix}*")],
        ),
        Statement(
            "PassServiceRoles",
            ["iam:PassRole"],
            [
                pulumi.Output.concat(
                    "arn:",
                    acct.partition,
                    ":iam::",
                    acct.account_id,
                    ":role",
                    service_role_path(env),
                    "*",
                )
            ],
            conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        ),
    ]
