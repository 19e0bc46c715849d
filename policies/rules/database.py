"""RDS: encrypted, private, backed up; in prod also deletion-protected and multi-AZ."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from policies.model import PolicyConfig, Resource, ResourceRule, is_unknown

DB_INSTANCE: Final = "aws:rds/instance:Instance"
DB_CLUSTER: Final = "aws:rds/cluster:Cluster"
DB_CLUSTER_INSTANCE: Final = "aws:rds/clusterInstance:ClusterInstance"


def _known(resource: Resource, key: str) -> tuple[bool, object]:
    value = resource.props.get(key)
    return (not is_unknown(value), value)


def check_storage_encrypted(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    del config
    known, value = _known(resource, "storageEncrypted")
    if known and value is not True:
        yield (
            f"{resource.where}: storageEncrypted must be true (got {value!r}). Set "
            "storage_encrypted=True and kms_key_id to the platform key."
        )


def check_not_publicly_accessible(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    del config
    known, value = _known(resource, "publiclyAccessible")
    if known and value is True:
        yield (
            f"{resource.where}: publiclyAccessible must be false (got True). Set "
            "publicly_accessible=False and place the database in the private subnets."
        )


def check_backups_enabled(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    del config
    known, value = _known(resource, "backupRetentionPeriod")
    if not known:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        yield (
            f"{resource.where}: backupRetentionPeriod must be at least 1 day (got {value!r}). "
            "Set backup_retention_period, e.g. 7."
        )


def check_deletion_protection(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    if not config.deletion_protection_required:
        return
    known, value = _known(resource, "deletionProtection")
    if known and value is not True:
        yield (
            f"{resource.where}: deletionProtection must be true in environment "
            f"{config.environment!r} (got {value!r}). Set deletion_protection=True."
        )


def check_multi_az(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    if not config.multi_az_required:
        return
    known, value = _known(resource, "multiAz")
    if known and value is not True:
        yield (
            f"{resource.where}: multiAz must be true in environment {config.environment!r} "
            f"(got {value!r}). Set multi_az=True."
        )


RULES: Final = (
    ResourceRule(
        name="rds-storage-encrypted",
        description="RDS instances and clusters encrypt their storage.",
        check=check_storage_encrypted,
        types=frozenset({DB_INSTANCE, DB_CLUSTER}),
    ),
    ResourceRule(
        name="rds-not-publicly-accessible",
        description="RDS instances are not publicly accessible.",
        check=check_not_publicly_accessible,
        types=frozenset({DB_INSTANCE, DB_CLUSTER_INSTANCE}),
    ),
    ResourceRule(
        name="rds-backups-enabled",
        description="RDS instances and clusters keep automated backups (retention > 0).",
        check=check_backups_enabled,
        types=frozenset({DB_INSTANCE, DB_CLUSTER}),
    ),
    ResourceRule(
        name="rds-deletion-protection",
        description="Where required (prod by default), databases have deletion protection.",
        check=check_deletion_protection,
        types=frozenset({DB_INSTANCE, DB_CLUSTER}),
        config_keys=("environment", "requireDeletionProtection"),
    ),
    ResourceRule(
        name="rds-multi-az",
        description="Where required (prod by default), RDS instances are multi-AZ.",
        check=check_multi_az,
        types=frozenset({DB_INSTANCE}),
        config_keys=("environment", "requireMultiAz"),
    ),
)
