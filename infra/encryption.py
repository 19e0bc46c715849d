"""The platform's KMS key: encrypts the bucket, the database, secrets, the topic and EKS secrets.

The key policy is written out, not left to AWS's default: the account administers and
uses the key through IAM (so roles still need their own grants), and CloudWatch alarms,
which publish to the encrypted alarm topic without a role, may use it for this account.
(Log groups keep CloudWatch Logs' own encryption.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from flowhost.infra.iam import Account
from flowhost.infra.tags import Tagging

__all__ = ["Encryption", "EncryptionArgs", "key_policy"]

# Explicit instead of kms:*: every administrative and cryptographic KMS action the
# account needs to keep managing the key (losing PutKeyPolicy would lock it out).
ADMIN_ACTIONS = (
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
)


@dataclass(frozen=True)
class EncryptionArgs:
    alias: str
    account: Account
    tagging: Tagging


def key_policy(partition: str, account_id: str) -> str:
    """The key policy. In a key policy ``Resource: "*"`` means this key (AWS requires it)."""
    root = f"arn:{partition}:iam::{account_id}:root"
    statements = [
        {
            "Sid": "AccountAdministersAndUsesTheKeyThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": list(ADMIN_ACTIONS),
            "Resource": "*",
        },
        {
            "Sid": "CloudWatchAlarmsPublishToTheEncryptedTopic",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


class Encryption(pulumi.ComponentResource):
    """One customer-managed KMS key (rotation on) and its alias."""

    def __init__(
        self, name: str, args: EncryptionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:Encryption", name, None, opts)
        acct = args.account
        policy = pulumi.Output.all(acct.partition, acct.account_id).apply(
            lambda v: key_policy(v[0], v[1])
        )
        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"flowhost {args.tagging.environment}: platform data",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=policy,
            tags=args.tagging.tags(f"{name}-key"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.kms.Alias(
            f"{name}-alias",
            name=f"alias/{args.alias}",
            target_key_id=self.key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.key_arn = self.key.arn
        self.register_outputs({"key_arn": self.key.arn})
