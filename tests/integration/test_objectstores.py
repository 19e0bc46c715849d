"""The ObjectStore port: the same behaviour from the local directory and from S3 (moto)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flowhost.errors import NotFoundError
from flowhost.lambdas.objectstore import LocalObjectStore, ObjectStore
from flowhost.lambdas.s3objects import S3ObjectStore


@pytest.fixture(params=["local", "s3"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, aws_client: Callable[[str], Any]
) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    s3 = aws_client("s3")
    bucket = f"flowhost-test-{abs(hash(tmp_path)) % 10**8}"
    s3.create_bucket(Bucket=bucket)
    return S3ObjectStore(s3, bucket, prefix="platform")


def test_put_get_overwrite_delete(store: ObjectStore) -> None:
    assert not store.exists("packages/a.tar.gz")
    store.put("packages/a.tar.gz", b"one")
    assert store.exists("packages/a.tar.gz")
    assert store.get("packages/a.tar.gz") == b"one"
    store.put("packages/a.tar.gz", b"two")
    assert store.get("packages/a.tar.gz") == b"two"
    store.delete("packages/a.tar.gz")
    assert not store.exists("packages/a.tar.gz")
    store.delete("packages/a.tar.gz")  # deleting what is gone is not an error


def test_missing_object_names_the_key(store: ObjectStore) -> None:
    with pytest.raises(NotFoundError, match=r"no object 'results/nope'"):
        store.get("results/nope")


@pytest.mark.parametrize("key", ["../outside", "a/../../b"])
def test_keys_cannot_escape_the_store(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="escapes the store"):
        store.put(key, b"x")


def test_large_objects_round_trip(store: ObjectStore) -> None:
    data = bytes(range(256)) * 40_000  # 10 MB
    store.put("payloads/big", data)
    assert store.get("payloads/big") == data


def test_s3_objects_live_under_the_prefix_and_use_kms_when_given(
    aws_client: Callable[[str], Any],
) -> None:
    s3, kms = aws_client("s3"), aws_client("kms")
    s3.create_bucket(Bucket="flowhost-prefix-test")
    key_id = kms.create_key(Description="flowhost test")["KeyMetadata"]["KeyId"]
    store = S3ObjectStore(s3, "flowhost-prefix-test", prefix="/env/", kms_key_id=key_id)
    store.put("packages/p", b"data")
    head = s3.head_object(Bucket="flowhost-prefix-test", Key="env/packages/p")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert key_id in head["SSEKMSKeyId"]
    assert store.get("packages/p") == b"data"
