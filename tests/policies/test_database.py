"""RDS: encrypted, private, backed up; deletion protection and multi-AZ where required."""

from typing import Any

import pytest

from policies.engine import UNKNOWN, PolicyConfig
from policies.rules import database
from policies.rules.database import DB_CLUSTER, DB_CLUSTER_INSTANCE, DB_INSTANCE
from tests.policies.support import DEV, PROD, TAGS, messages, res, run

GOOD: dict[str, Any] = {
    "storageEncrypted": True,
    "publiclyAccessible": False,
    "backupRetentionPeriod": 7,
    "deletionProtection": True,
    "multiAz": True,
    "tags": TAGS,
}


def db(**changes: Any) -> list[Any]:
    return [res(DB_INSTANCE, "state", {**GOOD, **changes})]


@pytest.mark.parametrize("config", [DEV, PROD])
def test_a_well_configured_instance_passes(config: PolicyConfig) -> None:
    assert run(database.RULES, db(), config) == []


@pytest.mark.parametrize(
    ("field", "value", "policy"),
    [
        ("storageEncrypted", False, "rds-storage-encrypted"),
        ("storageEncrypted", None, "rds-storage-encrypted"),
        ("publiclyAccessible", True, "rds-not-publicly-accessible"),
        ("backupRetentionPeriod", 0, "rds-backups-enabled"),
        ("backupRetentionPeriod", None, "rds-backups-enabled"),
        ("deletionProtection", False, "rds-deletion-protection"),
        ("multiAz", False, "rds-multi-az"),
    ],
)
def test_one_field_changed_fails_in_prod(field: str, value: Any, policy: str) -> None:
    found = run(database.RULES, db(**{field: value}), PROD)
    assert [v.policy for v in found] == [policy]
    assert field in found[0].message
    assert "'state'" in found[0].message


def test_dev_needs_neither_deletion_protection_nor_multi_az() -> None:
    assert run(database.RULES, db(deletionProtection=False, multiAz=False), DEV) == []


def test_config_overrides_the_environment_default() -> None:
    strict_dev = PolicyConfig(environment="dev", require_deletion_protection=True)
    relaxed_prod = PolicyConfig(environment="prod", require_multi_az=False)
    assert [v.policy for v in run(database.RULES, db(deletionProtection=False), strict_dev)] == [
        "rds-deletion-protection"
    ]
    assert run(database.RULES, db(multiAz=False), relaxed_prod) == []


def test_backup_retention_arrives_as_a_float_from_the_engine() -> None:
    assert run(database.RULES, db(backupRetentionPeriod=7.0), PROD) == []


def test_unknown_values_are_not_judged() -> None:
    assert run(database.RULES, db(storageEncrypted=UNKNOWN, backupRetentionPeriod=UNKNOWN)) == []


def test_aurora_cluster_and_its_instances() -> None:
    cluster = res(DB_CLUSTER, "aurora", {"storageEncrypted": False, "backupRetentionPeriod": 7})
    member = res(DB_CLUSTER_INSTANCE, "aurora-1", {"publiclyAccessible": True})
    found = run(database.RULES, [cluster, member], PROD)
    assert sorted((v.resource_name, v.policy) for v in found) == [
        ("aurora", "rds-deletion-protection"),
        ("aurora", "rds-storage-encrypted"),
        ("aurora-1", "rds-not-publicly-accessible"),
    ]
    assert all("Set " in m for m in messages(found))
