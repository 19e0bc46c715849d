"""S3: buckets are encrypted with KMS and never public."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from policies.model import (
    PolicyConfig,
    Resource,
    ResourceRule,
    StackRule,
    as_list,
    by_type,
    is_unknown,
    parse_document,
    refers_to,
    statements,
)

BUCKET: Final = "aws:s3/bucket:Bucket"
BUCKET_V2: Final = "aws:s3/bucketV2:BucketV2"
BUCKETS: Final = (BUCKET, BUCKET_V2)
SSE_CONFIG: Final = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
SSE_CONFIG_V2: Final = (
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2"
)
PUBLIC_ACCESS_BLOCK: Final = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_ACL: Final = "aws:s3/bucketAcl:BucketAcl"
BUCKET_ACL_V2: Final = "aws:s3/bucketAclV2:BucketAclV2"
BUCKET_POLICY: Final = "aws:s3/bucketPolicy:BucketPolicy"

KMS_ALGORITHMS: Final = frozenset({"aws:kms", "aws:kms:dsse"})
PUBLIC_ACCESS_FLAGS: Final = (
    "blockPublicAcls",
    "blockPublicPolicy",
    "ignorePublicAcls",
    "restrictPublicBuckets",
)
PUBLIC_CANNED_ACLS: Final = frozenset({"public-read", "public-read-write", "authenticated-read"})
PUBLIC_GRANTEE_URIS: Final = frozenset(
    {
        "http://acs.amazonaws.com/groups/global/AllUsers",
        "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
    }
)
# A bucket's children name it in their ``bucket`` input: its id (the bucket name).
BUCKET_KEYS: Final = ("bucket", "id")


def _children(bucket: Resource, resources: Sequence[Resource], *types: str) -> list[Resource]:
    return [c for c in by_type(resources, *types) if refers_to(c, "bucket", bucket, *BUCKET_KEYS)]


def _algorithms(rules: object) -> list[object]:
    """sseAlgorithm of each rule (``rules`` on the resource, ``rule`` inline on a Bucket)."""
    found: list[object] = []
    for rule in as_list(rules):
        if isinstance(rule, Mapping):
            default = rule.get("applyServerSideEncryptionByDefault")
            if isinstance(default, Mapping):
                found.append(default.get("sseAlgorithm"))
            else:
                found.append(None)
    return found


def check_bucket_encrypted(
    resources: Sequence[Resource], config: PolicyConfig
) -> Iterator[tuple[Resource, str]]:
    del config
    for bucket in by_type(resources, *BUCKETS):
        inline = bucket.props.get("serverSideEncryptionConfiguration")
        algorithms: list[object] = []
        if isinstance(inline, Mapping):
            algorithms += _algorithms(inline.get("rule"))
        for sse in _children(bucket, resources, SSE_CONFIG, SSE_CONFIG_V2):
            algorithms += _algorithms(sse.props.get("rules"))
        if any(is_unknown(a) for a in algorithms):
            continue
        weak = [a for a in algorithms if a not in KMS_ALGORITHMS]
        if weak:
            yield (
                bucket,
                f"{bucket.where}: server-side encryption must use KMS (got sseAlgorithm "
                f"{weak[0]!r}). Set sse_algorithm='aws:kms' and kms_master_key_id to the "
                "platform key.",
            )
        elif not algorithms:
            yield (
                bucket,
                f"{bucket.where}: no server-side encryption configuration (got none). Add an "
                "aws.s3.BucketServerSideEncryptionConfiguration for this bucket with "
                "sse_algorithm='aws:kms'.",
            )


def check_bucket_public_access_blocked(
    resources: Sequence[Resource], config: PolicyConfig
) -> Iterator[tuple[Resource, str]]:
    del config
    for bucket in by_type(resources, *BUCKETS):
        blocks = _children(bucket, resources, PUBLIC_ACCESS_BLOCK)
        if not blocks:
            yield (
                bucket,
                f"{bucket.where}: no public access block (got none). Add an "
                "aws.s3.BucketPublicAccessBlock for this bucket with all four flags true.",
            )
            continue
        for block in blocks:
            off = [
                f
                for f in PUBLIC_ACCESS_FLAGS
                if block.props.get(f) is not True and not is_unknown(block.props.get(f))
            ]
            if off:
                yield (
                    block,
                    f"{block.where} (bucket '{bucket.name}'): {', '.join(off)} must be true "
                    f"(got {[block.props.get(f) for f in off]}). Set all four of "
                    f"{', '.join(PUBLIC_ACCESS_FLAGS)} to true.",
                )


def _public_grants(acl_policy: object) -> list[str]:
    if not isinstance(acl_policy, Mapping):
        return []
    uris: list[str] = []
    for grant in as_list(acl_policy.get("grants")):
        grantee = grant.get("grantee") if isinstance(grant, Mapping) else None
        uri = grantee.get("uri") if isinstance(grantee, Mapping) else None
        if isinstance(uri, str) and uri in PUBLIC_GRANTEE_URIS:
            uris.append(uri)
    return uris


def _is_everyone(principal: object) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return any("*" in as_list(v) for v in principal.values())
    return False


def public_statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Allow statements whose principal is everyone with no condition narrowing it."""
    return [
        s
        for s in statements(document)
        if s.get("Effect") == "Allow"
        and _is_everyone(s.get("Principal"))
        and not s.get("Condition")
    ]


def check_no_public_acl_or_policy(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    del config
    acl = resource.props.get("acl")
    if isinstance(acl, str) and acl in PUBLIC_CANNED_ACLS:
        yield (
            f"{resource.where}: acl must not grant public access (got {acl!r}). Use 'private' "
            "(or no ACL, with object ownership BucketOwnerEnforced)."
        )
    for uri in _public_grants(resource.props.get("accessControlPolicy")):
        yield (
            f"{resource.where}: accessControlPolicy grants access to {uri}. Grant only to the "
            "bucket owner's canonical id."
        )
    document = parse_document(resource.props.get("policy"))
    if document is not None and public_statements(document):
        yield (
            f"{resource.where}: policy allows Principal '*' with no Condition (got "
            f"{len(public_statements(document))} such statement(s)). Name the principals, or "
            "add a Condition such as aws:SourceVpce or aws:PrincipalOrgID."
        )


RULES: Final = (
    StackRule(
        name="s3-bucket-encrypted-with-kms",
        description="S3 buckets have default server-side encryption with KMS.",
        check=check_bucket_encrypted,
    ),
    StackRule(
        name="s3-bucket-public-access-blocked",
        description="S3 buckets have a public access block with all four flags true.",
        check=check_bucket_public_access_blocked,
    ),
    ResourceRule(
        name="s3-no-public-acl-or-policy",
        description="S3 buckets have no public ACL, public grant or public bucket policy.",
        check=check_no_public_acl_or_policy,
        types=frozenset({*BUCKETS, BUCKET_ACL, BUCKET_ACL_V2, BUCKET_POLICY}),
    ),
)
