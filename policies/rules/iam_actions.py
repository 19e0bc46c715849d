"""IAM actions that support no resource-level permissions: ``Resource: "*"`` is the only
way to grant them, so a statement made only of these may use it.

Kept short on purpose: add an action when a role needs it. A test checks every entry
against parliament's copy of the AWS service authorization reference (the action must
list no resource types). Actions that do accept a resource are not here, even where
AWS's own managed policies use "*" (``logs:CreateLogGroup`` takes a log-group ARN;
``ec2:CreateNetworkInterface`` takes subnet and security-group ARNs: attach
``AWSLambdaVPCAccessExecutionRole`` instead of writing it inline).
"""

from __future__ import annotations

from typing import Final

WILDCARD_RESOURCE_ONLY: Final = frozenset(
    {
        # Tracing (ADOT collector, X-Ray SDK).
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
        # Metrics.
        "cloudwatch:PutMetricData",
        "cloudwatch:GetMetricData",
        "cloudwatch:GetMetricStatistics",
        "cloudwatch:ListMetrics",
        # Pulling images from ECR (the repository actions take repository ARNs).
        "ecr:GetAuthorizationToken",
        # Reading the network (ENIs, subnets, security groups).
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeVpcs",
        "ec2:DescribeInstances",
        "ec2:DescribeInstanceTypes",
        "ec2:DescribeAvailabilityZones",
        "ec2:DescribeRouteTables",
        "ec2:DescribeLaunchTemplates",
        "ec2:DescribeLaunchTemplateVersions",
        # The control plane reading its load balancer and services.
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeRules",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetHealth",
        "ecs:ListClusters",
        "ecs:ListServices",
        "ecs:DescribeTaskDefinition",
        # The control plane registering and retiring versions' task definitions.
        "ecs:DeregisterTaskDefinition",
        "ecs:ListTaskDefinitions",
        "application-autoscaling:DescribeScalableTargets",
        "application-autoscaling:DescribeScalingPolicies",
        "application-autoscaling:DescribeScalingActivities",
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribeAutoScalingInstances",
        "autoscaling:DescribeTags",
        "eks:ListClusters",
        # Creating the platform's keys and GPU cluster (the CI deploy role).
        "kms:CreateKey",
        "eks:CreateCluster",
        "ec2:DescribeAddresses",
        "ec2:DescribeInternetGateways",
        "ec2:DescribeNatGateways",
        "ec2:DescribeVpcEndpoints",
        "logs:DescribeLogGroups",
        "sqs:ListQueues",
        "s3:ListAllMyBuckets",
        "kms:ListKeys",
        "kms:ListAliases",
        "secretsmanager:GetRandomPassword",
        "secretsmanager:ListSecrets",
        "ssm:DescribeParameters",
        "sts:GetCallerIdentity",
        "tag:GetResources",
    }
)
# Compared case-insensitively (IAM action names are).
WILDCARD_RESOURCE_ONLY_LOWER: Final = frozenset(a.lower() for a in WILDCARD_RESOURCE_ONLY)
