"""The platform bucket: code packages, artifacts, async payloads and results, request logs.

Encrypted with the platform's KMS key (bucket keys on), versioned, every public access
block on, owner-enforced object ownership (no ACLs), TLS-only by bucket policy, and
lifecycle rules that expire async payloads/results and request logs after their TTLs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from flowhost.infra.tags import Tagging

__all__ = ["ASYNC_PREFIX", "REQUEST_LOG_PREFIX", "Storage", "StorageArgs", "tls_only_policy"]

ASYNC_PREFIX = "async/"
REQUEST_LOG_PREFIX = "request-logs/"


@dataclass(frozen=True)
class StorageArgs:
    kms_key_arn: pulumi.Input[str]
    async_ttl_days: int
    request_log_ttl_days: int
    noncurrent_version_days: int
    force_destroy: bool
    tagging: Tagging


def tls_only_policy(bucket_arn: str) -> str:
    """Deny every request to the bucket that does not use TLS."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": {"AWS": "*"},
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        },
        sort_keys=True,
    )


class Storage(pulumi.ComponentResource):
    """The S3 bucket and its encryption, versioning, public access block, lifecycle, policy."""

    def __init__(
        self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:Storage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            force_destroy=args.force_destroy,
            tags=args.tagging.tags(f"{name}-bucket"),
            opts=child,
        )
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": args.kms_key_arn,
                    },
                    "bucket_key_enabled": True,
                }
            ],
            opts=child,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[
                {
                    "id": "async-payloads-and-results",
                    "status": "Enabled",
                    "filter": {"prefix": ASYNC_PREFIX},
                    "expiration": {"days": args.async_ttl_days},
                    "noncurrent_version_expiration": {"noncurrent_days": 1},
                },
                {
                    "id": "request-logs",
                    "status": "Enabled",
                    "filter": {"prefix": REQUEST_LOG_PREFIX},
                    "expiration": {"days": args.request_log_ttl_days},
                    "noncurrent_version_expiration": {"noncurrent_days": 1},
                },
                {
                    "id": "old-versions-and-uploads",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    "noncurrent_version_expiration": {
                        "noncurrent_days": args.noncurrent_version_days
                    },
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                },
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket.id,
            policy=bucket.arn.apply(tls_only_policy),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]),
        )
        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.register_outputs({"bucket_name": bucket.bucket, "bucket_arn": bucket.arn})
