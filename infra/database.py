"""PostgreSQL on RDS for the state of the world.

Private (own subnet group over the private subnets, never publicly accessible, reachable
from the control-plane security group only), encrypted with the platform key, TLS
forced, automated backups kept, and the master password generated and rotated by RDS
in Secrets Manager (``manage_master_user_password``): it never passes through Pulumi.
Multi-AZ and deletion protection come from the stack's config (on in prod).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from flowhost.infra.tags import Tagging

__all__ = ["DB_NAME", "DB_PORT", "Database", "DatabaseArgs"]

DB_NAME = "flowhost"
DB_PORT = 5432


@dataclass(frozen=True)
class DatabaseArgs:
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    instance_class: str
    engine_version: str
    allocated_storage_gb: int
    max_allocated_storage_gb: int
    multi_az: bool
    deletion_protection: bool
    backup_retention_days: int
    log_retention_days: int
    tagging: Tagging


class Database(pulumi.ComponentResource):
    """RDS PostgreSQL instance, its subnet group and a TLS-only parameter group."""

    def __init__(
        self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tagging.tags
        subnets = aws.rds.SubnetGroup(
            f"{name}-subnets",
            subnet_ids=list(args.subnet_ids),
            description="flowhost state store: private subnets",
            tags=tags(f"{name}-subnets"),
            opts=child,
        )
        major = args.engine_version.split(".", 1)[0]
        params = aws.rds.ParameterGroup(
            f"{name}-params",
            family=f"postgres{major}",
            description="flowhost state store: TLS only, slow statements logged",
            parameters=[
                {"name": "rds.force_ssl", "value": "1"},
                {"name": "log_min_duration_statement", "value": "1000"},
            ],
            tags=tags(f"{name}-params"),
            opts=child,
        )
        keep_snapshot = args.deletion_protection
        identifier = f"{name}-postgres"
        # RDS would create the exported log group itself, kept forever: create it first.
        logs = aws.cloudwatch.LogGroup(
            f"{name}-postgres-logs",
            name=f"/aws/rds/instance/{identifier}/postgresql",
            retention_in_days=args.log_retention_days,
            tags=tags(f"{name}-postgres-logs"),
            opts=child,
        )
        self.instance = aws.rds.Instance(
            f"{name}-postgres",
            identifier=identifier,
            engine="postgres",
            engine_version=args.engine_version,
            instance_class=args.instance_class,
            allocated_storage=args.allocated_storage_gb,
            max_allocated_storage=args.max_allocated_storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=args.kms_key_arn,
            db_name=DB_NAME,
            username="flowhost",
            manage_master_user_password=True,
            master_user_secret_kms_key_id=args.kms_key_arn,
            port=DB_PORT,
            db_subnet_group_name=subnets.name,
            parameter_group_name=params.name,
            vpc_security_group_ids=[args.security_group_id],
            publicly_accessible=False,
            multi_az=args.multi_az,
            deletion_protection=args.deletion_protection,
            backup_retention_period=args.backup_retention_days,
            copy_tags_to_snapshot=True,
            skip_final_snapshot=not keep_snapshot,
            final_snapshot_identifier=f"{name}-final" if keep_snapshot else None,
            auto_minor_version_upgrade=True,
            iam_database_authentication_enabled=True,
            performance_insights_enabled=True,
            performance_insights_kms_key_id=args.kms_key_arn,
            enabled_cloudwatch_logs_exports=["postgresql"],
            tags=tags(f"{name}-postgres"),
            opts=pulumi.ResourceOptions(
                parent=self, protect=args.deletion_protection, depends_on=[logs]
            ),
        )
        self.endpoint = self.instance.endpoint
        self.address = self.instance.address
        self.secret_arn = self.instance.master_user_secrets.apply(
            lambda secrets: secrets[0].secret_arn or "" if secrets else ""
        )
        self.register_outputs({"address": self.address, "secret_arn": self.secret_arn})
