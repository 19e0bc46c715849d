"""S3: encrypted with KMS, public access blocked, no public ACL or policy."""

import json
from typing import Any

import pytest

from policies.engine import UNKNOWN, Resource
from policies.rules import storage
from policies.rules.storage import (
    BUCKET,
    BUCKET_ACL,
    BUCKET_POLICY,
    PUBLIC_ACCESS_BLOCK,
    PUBLIC_ACCESS_FLAGS,
    SSE_CONFIG,
)
from tests.policies.support import TAGS, messages, res, run

ENCRYPTED, BLOCKED, NOT_PUBLIC = storage.RULES
KMS_RULES = [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]
ALL_BLOCKED = dict.fromkeys(PUBLIC_ACCESS_FLAGS, True)


def bucket(name: str = "data", **props: Any) -> Resource:
    return res(BUCKET, name, {"tags": TAGS, **props}, id=f"{name}-4f1c")


def sse(of: Resource, rules: Any = KMS_RULES) -> Resource:
    return res(SSE_CONFIG, f"{of.name}-sse", {"bucket": of.id, "rules": rules})


def pab(of: Resource, **flags: Any) -> Resource:
    return res(PUBLIC_ACCESS_BLOCK, f"{of.name}-pab", {"bucket": of.id, **ALL_BLOCKED, **flags})


def test_bucket_with_kms_and_a_full_block_passes() -> None:
    b = bucket()
    assert run(storage.RULES, [b, sse(b), pab(b)]) == []


def test_bucket_without_encryption_fails() -> None:
    b = bucket()
    found = run([ENCRYPTED], [b, pab(b)])
    assert [(v.policy, v.resource_name) for v in found] == [(ENCRYPTED.name, "data")]
    assert "BucketServerSideEncryptionConfiguration" in found[0].message


def test_encryption_without_kms_fails() -> None:
    b = bucket()
    aes = [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]
    found = messages(run([ENCRYPTED], [b, sse(b, aes)]))
    assert len(found) == 1
    assert "'AES256'" in found[0]
    assert "aws:kms" in found[0]


def test_inline_kms_encryption_on_the_bucket_passes() -> None:
    inline = {"rule": {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}}
    assert run([ENCRYPTED], [bucket(serverSideEncryptionConfiguration=inline)]) == []


def test_another_buckets_encryption_does_not_count() -> None:
    a, b = bucket("a"), bucket("b")
    found = run([ENCRYPTED], [a, b, sse(a)])
    assert [v.resource_name for v in found] == ["b"]


def test_children_match_the_bucket_name_as_well_as_its_id() -> None:
    b = res(BUCKET, "named", {"bucket": "flowhost-dev-data", "tags": TAGS})
    config = res(SSE_CONFIG, "named-sse", {"bucket": "flowhost-dev-data", "rules": KMS_RULES})
    assert run([ENCRYPTED], [b, config]) == []


def test_children_match_by_dependency_when_the_id_is_unknown() -> None:
    """During preview a new bucket's id is unknown; the engine still records the dependency."""
    b = res(BUCKET, "new", {"tags": TAGS})
    config = res(
        SSE_CONFIG,
        "new-sse",
        {"bucket": UNKNOWN, "rules": KMS_RULES},
        property_dependencies={"bucket": (b.urn,)},
    )
    block = res(
        PUBLIC_ACCESS_BLOCK, "new-pab", {"bucket": UNKNOWN, **ALL_BLOCKED}, dependencies=[b.urn]
    )
    assert run([ENCRYPTED, BLOCKED], [b, config, block]) == []


def test_bucket_without_public_access_block_fails() -> None:
    b = bucket()
    found = run([BLOCKED], [b, sse(b)])
    assert [v.resource_name for v in found] == ["data"]
    assert "BucketPublicAccessBlock" in found[0].message


@pytest.mark.parametrize("flag", PUBLIC_ACCESS_FLAGS)
def test_each_public_access_flag_must_be_true(flag: str) -> None:
    b = bucket()
    found = run([BLOCKED], [b, pab(b, **{flag: False})])
    assert [v.resource_name for v in found] == ["data-pab"]
    assert flag in found[0].message


def test_a_missing_public_access_flag_fails() -> None:
    b = bucket()
    block = res(PUBLIC_ACCESS_BLOCK, "pab", {"bucket": b.id, "blockPublicAcls": True})
    found = messages(run([BLOCKED], [b, block]))
    assert len(found) == 1
    assert "restrictPublicBuckets" in found[0]


@pytest.mark.parametrize("acl", ["public-read", "public-read-write", "authenticated-read"])
def test_public_canned_acl_fails(acl: str) -> None:
    found = messages(run([NOT_PUBLIC], [bucket(acl=acl)]))
    assert len(found) == 1
    assert repr(acl) in found[0]


def test_private_acl_passes() -> None:
    acl = res(BUCKET_ACL, "acl", {"bucket": "data", "acl": "private"})
    assert run([NOT_PUBLIC], [bucket(acl="private"), acl]) == []


def test_acl_grant_to_all_users_fails() -> None:
    grant = {"grantee": {"type": "Group", "uri": "http://acs.amazonaws.com/groups/global/AllUsers"}}
    acl = res(BUCKET_ACL, "acl", {"bucket": "data", "accessControlPolicy": {"grants": [grant]}})
    found = messages(run([NOT_PUBLIC], [acl]))
    assert len(found) == 1
    assert "AllUsers" in found[0]


def _policy(principal: Any, condition: Any = None) -> str:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::data/*",
    }
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@pytest.mark.parametrize("principal", ["*", {"AWS": "*"}, {"AWS": ["arn:aws:iam::1:root", "*"]}])
def test_bucket_policy_open_to_everyone_fails(principal: Any) -> None:
    policy = res(BUCKET_POLICY, "policy", {"bucket": "data", "policy": _policy(principal)})
    found = messages(run([NOT_PUBLIC], [policy]))
    assert len(found) == 1
    assert "Principal '*'" in found[0]


def test_bucket_policy_for_named_principals_or_with_a_condition_passes() -> None:
    named = res(BUCKET_POLICY, "named", {"policy": _policy({"AWS": "arn:aws:iam::1:root"})})
    vpce = _policy("*", {"StringEquals": {"aws:SourceVpce": "vpce-1"}})
    conditioned = res(BUCKET_POLICY, "vpce", {"policy": vpce})
    assert run([NOT_PUBLIC], [named, conditioned]) == []
