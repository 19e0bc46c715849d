"""What the CI roles may do, as IAM statements (:mod:`flowhost.infra.ci_identity` makes the
roles).

``ci-preview`` reads: what the program looks up (zones, the caller, a registry login), and
the Pulumi state (``flowhost:pulumiStateBackend``): read, and take and release the lock.

``ci-deploy`` is what ``pulumi up`` of the platform and user stacks changes, family by
family, on the platform's names (``flowhost-<env>-*``, ``/flowhost/<env>/*``, the queue
prefix, ``<env>-*`` target groups) or, where AWS names a resource by id (VPC parts, API,
keys), on that kind of resource in this account and region. Service roles
(``/flowhost/<env>/services/``) exist only with the platform's permissions boundary, which
it may neither detach nor rewrite, and it may not change the CI roles themselves (an
administrator does: the trust and grants of CI are not CI's to widen). ``"*"`` appears only
for actions AWS authorizes on nothing narrower (:data:`_STAR_ONLY`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pulumi

from flowhost.infra.ci_state import StateBackend, state_statements
from flowhost.infra.iam import Account, Statement, service_role_path

__all__ = ["CiScope", "deploy_statements", "preview_statements"]


@dataclass(frozen=True)
class CiScope:
    account: Account
    environment: str
    queue_name_prefix: str  # e.g. flowhost-dev-
    boundary_arn: pulumi.Input[str]
    state_backend: StateBackend | None


# What the program reads during a preview; none of these take a resource ARN.
_PROGRAM_READS: Final = (
    "ec2:DescribeAvailabilityZones",
    "ecr:GetAuthorizationToken",
    "sts:GetCallerIdentity",
)
# Reads and creates of ``pulumi up`` that AWS authorizes on "*" only.
_STAR_ONLY: Final = (
    "ec2:DescribeAddresses", "ec2:DescribeInternetGateways", "ec2:DescribeNatGateways",
    "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets",
    "ec2:DescribeVpcEndpoints", "ec2:DescribeVpcs",
    "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeRules", "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth", "kms:CreateKey", "eks:CreateCluster",
    "ecs:DescribeTaskDefinition", "ecs:DeregisterTaskDefinition", "logs:DescribeLogGroups",
)  # fmt: skip


def preview_statements(scope: CiScope) -> list[Statement]:
    return [
        Statement("ProgramReads", list(_PROGRAM_READS), ["*"]),
        *state_statements(scope.state_backend, scope.account.partition, write=False),
    ]


def _iam(scope: CiScope) -> list[Statement]:
    acct, env = scope.account, scope.environment
    services = acct.arn("iam", f"role{service_role_path(env)}*", regional=False)
    ci_roles = acct.arn("iam", f"role/flowhost-{env}-ci-*", regional=False)
    boundary = {"StringEquals": {"iam:PermissionsBoundary": scope.boundary_arn}}
    return [
        Statement(
            "PlatformRolesAndPolicies",
            [
                "iam:AttachRolePolicy", "iam:CreatePolicy", "iam:CreatePolicyVersion",
                "iam:CreateRole", "iam:DeletePolicy", "iam:DeletePolicyVersion",
                "iam:DeleteRole", "iam:DeleteRolePolicy", "iam:DetachRolePolicy",
                "iam:GetPolicy", "iam:GetPolicyVersion", "iam:GetRole", "iam:GetRolePolicy",
                "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole",
                "iam:ListPolicyVersions", "iam:ListRolePolicies", "iam:PassRole",
                "iam:PutRolePolicy", "iam:TagPolicy", "iam:TagRole", "iam:UntagPolicy",
                "iam:UntagRole", "iam:UpdateAssumeRolePolicy", "iam:UpdateRole",
            ],
            [acct.arn("iam", f"role/flowhost-{env}-*", regional=False),
             acct.arn("iam", f"policy/flowhost-{env}-*", regional=False)],
        ),
        # A service role (user stacks) exists only with the platform's boundary.
        Statement(
            "ServiceRolesWithinTheBoundary",
            ["iam:AttachRolePolicy", "iam:CreateRole", "iam:DeleteRolePolicy",
             "iam:DetachRolePolicy", "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy"],
            [services],
            conditions=boundary,
        ),
        Statement(
            "ServiceRoles",
            ["iam:DeleteRole", "iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies",
             "iam:ListInstanceProfilesForRole", "iam:ListRolePolicies", "iam:PassRole",
             "iam:TagRole", "iam:UntagRole", "iam:UpdateAssumeRolePolicy"],
            [services],
        ),
        Statement(
            "KeepTheBoundary",
            ["iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:DeletePolicyVersion",
             "iam:DeleteRolePermissionsBoundary", "iam:SetDefaultPolicyVersion"],
            [services, scope.boundary_arn],
            effect="Deny",
        ),
        Statement(
            "KeepTheCiRoles",
            ["iam:AttachRolePolicy", "iam:DeleteRolePolicy", "iam:DetachRolePolicy",
             "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy",
             "iam:UpdateRole", "iam:DeleteRole"],
            [ci_roles],
            effect="Deny",
        ),
        Statement(
            "OidcProviders",
            ["iam:CreateOpenIDConnectProvider", "iam:DeleteOpenIDConnectProvider",
             "iam:GetOpenIDConnectProvider", "iam:TagOpenIDConnectProvider"],
            [pulumi.Output.concat(
                "arn:", acct.partition, ":iam::", acct.account_id, ":oidc-provider/oidc.eks.",
                acct.region, ".amazonaws.com/id/*",
            )],
        ),
    ]  # fmt: skip


def deploy_statements(scope: CiScope) -> list[Statement]:
    """``pulumi up`` of the platform and user stacks, by name prefix where AWS names allow."""
    acct, env = scope.account, scope.environment
    named = f"flowhost-{env}-*"
    partition, region = acct.partition, acct.region
    apigateway = [
        pulumi.Output.concat("arn:", partition, ":apigateway:", region, "::", path)
        for path in ("/apis", "/apis/*", "/vpclinks", "/vpclinks/*", "/tags/*")
    ]
    return [
        Statement("ProgramReads", list(_PROGRAM_READS), ["*"]),
        Statement("ReadsOnStarOnly", list(_STAR_ONLY), ["*"]),
        *state_statements(scope.state_backend, partition, write=True),
        *_iam(scope),
        Statement(
            "PlatformFunctions",
            ["lambda:AddPermission", "lambda:CreateFunction", "lambda:DeleteFunction",
             "lambda:GetFunction", "lambda:GetFunctionCodeSigningConfig", "lambda:GetPolicy",
             "lambda:ListTags", "lambda:ListVersionsByFunction", "lambda:RemovePermission",
             "lambda:TagResource", "lambda:UntagResource", "lambda:UpdateFunctionCode",
             "lambda:UpdateFunctionConfiguration"],
            [acct.arn("lambda", f"function:{named}")],
        ),
        Statement(
            "PlatformLogs",
            ["logs:AssociateKmsKey", "logs:CreateLogGroup", "logs:DeleteLogGroup",
             "logs:ListTagsForResource", "logs:PutRetentionPolicy", "logs:TagResource",
             "logs:UntagResource"],
            [acct.arn("logs", f"log-group:/flowhost/{env}/*"),
             acct.arn("logs", f"log-group:/aws/lambda/{named}"),
             acct.arn("logs", f"log-group:/aws/rds/instance/{named}"),
             acct.arn("logs", f"log-group:/aws/eks/{named}")],
        ),
        Statement(
            "PlatformQueues",
            ["sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueAttributes",
             "sqs:ListQueueTags", "sqs:SetQueueAttributes", "sqs:TagQueue", "sqs:UntagQueue"],
            [acct.arn("sqs", f"{scope.queue_name_prefix}*")],
        ),
        Statement(
            "PlatformParameters",
            ["ssm:AddTagsToResource", "ssm:DeleteParameter", "ssm:GetParameter",
             "ssm:GetParameters", "ssm:ListTagsForResource", "ssm:PutParameter",
             "ssm:RemoveTagsFromResource"],
            [acct.arn("ssm", f"parameter/flowhost/{env}/*")],
        ),
        Statement(
            "PlatformContainers",
            ["ecs:CreateCluster", "ecs:CreateService", "ecs:DeleteCluster", "ecs:DeleteService",
             "ecs:DescribeClusters", "ecs:DescribeServices", "ecs:ListTagsForResource",
             "ecs:PutClusterCapacityProviders", "ecs:RegisterTaskDefinition",
             "ecs:TagResource", "ecs:UntagResource", "ecs:UpdateService"],
            [acct.arn("ecs", f"cluster/flowhost-{env}"),
             acct.arn("ecs", f"service/flowhost-{env}/*"),
             acct.arn("ecs", f"task-definition/{named}:*")],
        ),
        Statement(
            "PlatformRegistries",
            ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload",
             "ecr:CreateRepository", "ecr:DeleteLifecyclePolicy", "ecr:DeleteRepository",
             "ecr:DescribeRepositories", "ecr:GetLifecyclePolicy", "ecr:InitiateLayerUpload",
             "ecr:ListTagsForResource", "ecr:PutImage", "ecr:PutLifecyclePolicy",
             "ecr:TagResource", "ecr:UntagResource", "ecr:UploadLayerPart"],
            [acct.arn("ecr", f"repository/flowhost-{env}-*"),
             acct.arn("ecr", f"repository/flowhost-{env}/*")],
        ),
        Statement(
            "PlatformLoadBalancing",
            ["elasticloadbalancing:AddTags", "elasticloadbalancing:CreateListener",
             "elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateRule",
             "elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:DeleteListener",
             "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:DeleteRule",
             "elasticloadbalancing:DeleteTargetGroup", "elasticloadbalancing:DeregisterTargets",
             "elasticloadbalancing:ModifyListener",
             "elasticloadbalancing:ModifyLoadBalancerAttributes",
             "elasticloadbalancing:ModifyRule", "elasticloadbalancing:ModifyTargetGroup",
             "elasticloadbalancing:ModifyTargetGroupAttributes",
             "elasticloadbalancing:RegisterTargets", "elasticloadbalancing:RemoveTags"],
            [acct.arn("elasticloadbalancing", f"targetgroup/{env}-*/*"),
             acct.arn("elasticloadbalancing", f"targetgroup/{named}/*"),
             acct.arn("elasticloadbalancing", f"loadbalancer/app/{named}/*"),
             acct.arn("elasticloadbalancing", f"listener/app/{named}/*/*"),
             acct.arn("elasticloadbalancing", f"listener-rule/app/{named}/*/*/*")],
        ),
        Statement(
            "PlatformNetwork",  # VPC parts are named by id: this account and region
            ["ec2:AllocateAddress", "ec2:AssociateRouteTable", "ec2:AttachInternetGateway",
             "ec2:AuthorizeSecurityGroupEgress", "ec2:AuthorizeSecurityGroupIngress",
             "ec2:CreateInternetGateway", "ec2:CreateNatGateway", "ec2:CreateRoute",
             "ec2:CreateRouteTable", "ec2:CreateSecurityGroup", "ec2:CreateSubnet",
             "ec2:CreateTags", "ec2:CreateVpc", "ec2:CreateVpcEndpoint",
             "ec2:DeleteInternetGateway",
             "ec2:DeleteNatGateway", "ec2:DeleteRoute", "ec2:DeleteRouteTable",
             "ec2:DeleteSecurityGroup", "ec2:DeleteSubnet", "ec2:DeleteTags", "ec2:DeleteVpc",
             "ec2:DeleteVpcEndpoints", "ec2:DetachInternetGateway", "ec2:DisassociateRouteTable",
             "ec2:DescribeVpcAttribute", "ec2:ModifySubnetAttribute", "ec2:ModifyVpcAttribute",
             "ec2:ModifyVpcEndpoint",
             "ec2:ReleaseAddress", "ec2:RevokeSecurityGroupEgress",
             "ec2:RevokeSecurityGroupIngress"],
            [acct.arn("ec2", "*")],
        ),
        Statement(
            "PlatformApi",  # APIs and VPC links are named by id
            ["apigateway:DELETE", "apigateway:GET", "apigateway:PATCH", "apigateway:POST",
             "apigateway:PUT"],
            apigateway,
        ),
        Statement(
            "PlatformKeys",  # keys are named by id; aliases by the platform's name
            ["kms:CreateAlias", "kms:DeleteAlias", "kms:DescribeKey", "kms:EnableKeyRotation",
             "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags",
             "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:TagResource",
             "kms:UntagResource", "kms:UpdateAlias"],
            [acct.arn("kms", "key/*"), acct.arn("kms", f"alias/flowhost-{env}*")],
        ),
        Statement(
            "PlatformBucket",
            ["s3:CreateBucket", "s3:DeleteBucket", "s3:DeleteBucketPolicy",
             "s3:GetBucketPolicy", "s3:GetBucketTagging", "s3:GetBucketVersioning",
             "s3:GetEncryptionConfiguration", "s3:GetLifecycleConfiguration",
             "s3:GetBucketOwnershipControls", "s3:GetBucketPublicAccessBlock",
             "s3:PutBucketOwnershipControls", "s3:PutBucketPolicy",
             "s3:PutBucketPublicAccessBlock", "s3:PutBucketTagging", "s3:PutBucketVersioning",
             "s3:PutEncryptionConfiguration", "s3:PutLifecycleConfiguration"],
            [pulumi.Output.concat("arn:", partition, f":s3:::{named}")],
        ),
        Statement(  # what the bucket's policy could grant anyway (packages, artifacts)
            "PlatformBucketObjects",
            ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
            [pulumi.Output.concat("arn:", partition, f":s3:::{named}/*")],
        ),
        Statement(
            "PlatformDatabase",
            ["rds:AddTagsToResource", "rds:CreateDBInstance", "rds:CreateDBParameterGroup",
             "rds:CreateDBSubnetGroup", "rds:DeleteDBInstance", "rds:DeleteDBParameterGroup",
             "rds:DeleteDBSubnetGroup", "rds:DescribeDBInstances",
             "rds:DescribeDBParameterGroups", "rds:DescribeDBParameters",
             "rds:DescribeDBSubnetGroups", "rds:ListTagsForResource", "rds:ModifyDBInstance",
             "rds:ModifyDBParameterGroup", "rds:ModifyDBSubnetGroup",
             "rds:RemoveTagsFromResource"],
            [acct.arn("rds", f"db:{named}"), acct.arn("rds", f"pg:{named}"),
             acct.arn("rds", f"subgrp:{named}")],
        ),
        Statement(
            "PlatformSecrets",
            ["secretsmanager:CreateSecret", "secretsmanager:DeleteSecret",
             "secretsmanager:DescribeSecret", "secretsmanager:GetResourcePolicy",
             "secretsmanager:PutSecretValue", "secretsmanager:TagResource",
             "secretsmanager:UntagResource", "secretsmanager:UpdateSecret"],
            [acct.arn("secretsmanager", f"secret:{named}")],
        ),
        Statement(
            "PlatformAlarms",
            ["cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms",
             "cloudwatch:ListTagsForResource", "cloudwatch:PutMetricAlarm",
             "cloudwatch:TagResource", "cloudwatch:UntagResource", "events:DeleteRule",
             "events:DescribeRule", "events:ListTagsForResource", "events:ListTargetsByRule",
             "events:PutRule", "events:PutTargets", "events:RemoveTargets",
             "events:TagResource", "events:UntagResource", "sns:CreateTopic",
             "sns:DeleteTopic", "sns:GetTopicAttributes", "sns:ListTagsForResource",
             "sns:SetTopicAttributes", "sns:Subscribe", "sns:TagResource",
             "sns:UntagResource"],
            [acct.arn("cloudwatch", f"alarm:{named}"), acct.arn("events", f"rule/{named}"),
             acct.arn("sns", named)],
        ),
        Statement(
            "PlatformTracing",
            ["xray:CreateGroup", "xray:CreateSamplingRule", "xray:DeleteGroup",
             "xray:DeleteSamplingRule", "xray:GetGroup", "xray:TagResource",
             "xray:UntagResource", "xray:UpdateGroup", "xray:UpdateSamplingRule"],
            [acct.arn("xray", f"group/flowhost-{env}/*"),
             acct.arn("xray", f"sampling-rule/flowhost-{env}")],
        ),
        Statement(
            "PlatformGpuCluster",
            ["eks:CreateNodegroup", "eks:DeleteCluster",
             "eks:DeleteNodegroup", "eks:DescribeCluster", "eks:DescribeNodegroup",
             "eks:TagResource", "eks:UntagResource", "eks:UpdateClusterConfig",
             "eks:UpdateClusterVersion", "eks:UpdateNodegroupConfig",
             "eks:UpdateNodegroupVersion"],
            [acct.arn("eks", f"cluster/flowhost-{env}-gpu"),
             acct.arn("eks", f"nodegroup/flowhost-{env}-gpu/*/*")],
        ),
    ]  # fmt: skip
