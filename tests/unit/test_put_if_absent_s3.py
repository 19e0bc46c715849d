"""S3ObjectStore.put_if_absent's answers to S3's conditional-write errors, with botocore's
Stubber (no network): 412 means the key exists, 409 is a concurrent conditional write
to retry, anything else is raised. (The moto tests check the real round trip.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from flowhost.errors import NotFoundError
from flowhost.lambdas.jobs import DEFAULT_JOB_TIMEOUT, job_message
from flowhost.lambdas.s3objects import S3ObjectStore

BUCKET = "flowhost-stubbed"
KMS = "arn:aws:kms:us-east-1:123456789012:key/test"


@pytest.fixture
def stubbed() -> Iterator[tuple[S3ObjectStore, Stubber]]:
    client: Any = boto3.client(  # pyright: ignore[reportUnknownMemberType]
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield S3ObjectStore(client, BUCKET, prefix="env", kms_key_id=KMS), stubber
        stubber.assert_no_pending_responses()


def expected(body: bytes) -> dict[str, Any]:
    return {
        "Bucket": BUCKET, "Key": "env/async/s/r/outcome.json", "Body": body,
        "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": KMS, "IfNoneMatch": "*",
    }  # fmt: skip


def test_a_create_only_put_keeps_the_kms_parameters(
    stubbed: tuple[S3ObjectStore, Stubber],
) -> None:
    store, stubber = stubbed
    stubber.add_response("put_object", {}, expected(b"first"))
    assert store.put_if_absent("async/s/r/outcome.json", b"first") is True


def test_precondition_failed_means_the_key_exists(stubbed: tuple[S3ObjectStore, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error(
        "put_object", "PreconditionFailed", http_status_code=412,
        expected_params=expected(b"second"),
    )  # fmt: skip
    assert store.put_if_absent("async/s/r/outcome.json", b"second") is False


def test_a_concurrent_conditional_write_is_retried(stubbed: tuple[S3ObjectStore, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error(
        "put_object", "ConditionalRequestConflict", http_status_code=409,
        expected_params=expected(b"racing"),
    )  # fmt: skip
    stubber.add_client_error(
        "put_object", "PreconditionFailed", http_status_code=412,
        expected_params=expected(b"racing"),
    )  # fmt: skip
    assert store.put_if_absent("async/s/r/outcome.json", b"racing") is False


def test_conflicts_that_persist_and_other_errors_are_raised(
    stubbed: tuple[S3ObjectStore, Stubber],
) -> None:
    store, stubber = stubbed
    for _ in range(3):
        stubber.add_client_error(
            "put_object", "ConditionalRequestConflict", http_status_code=409,
            expected_params=expected(b"x"),
        )  # fmt: skip
    with pytest.raises(ClientError, match="ConditionalRequestConflict"):
        store.put_if_absent("async/s/r/outcome.json", b"x")
    stubber.add_client_error(
        "put_object", "AccessDenied", http_status_code=403, expected_params=expected(b"x")
    )
    with pytest.raises(ClientError, match="AccessDenied"):
        store.put_if_absent("async/s/r/outcome.json", b"x")


def test_the_job_message_carries_the_timeout_when_given() -> None:
    pointer = {"request_id": "req_1", "endpoint": "predict", "payload_key": "k"}
    assert json.loads(job_message("req_1", "predict", "k")) == pointer  # as before
    with_timeout = job_message("req_1", "predict", "k", timeout_seconds=90.0)
    assert json.loads(with_timeout) == {**pointer, "timeout_seconds": 90.0}
    assert DEFAULT_JOB_TIMEOUT == 3600.0  # AsyncSettings.default_timeout, documented


@pytest.mark.parametrize("denied_is_missing", [True, False])
def test_a_403_read_counts_as_missing_only_for_a_store_without_list_rights(
    denied_is_missing: bool,
) -> None:
    """S3 says 403, not 404, for a missing key to a caller that may not list the bucket
    (a serving task's role): that store reads 403 as missing; others raise it."""
    client: Any = boto3.client(  # pyright: ignore[reportUnknownMemberType]
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    store = S3ObjectStore(client, BUCKET, denied_is_missing=denied_is_missing)
    with Stubber(client) as stubber:
        stubber.add_client_error("get_object", "AccessDenied", http_status_code=403)
        stubber.add_client_error("head_object", "403", http_status_code=403)
        if denied_is_missing:
            with pytest.raises(NotFoundError):
                store.get("async/s/r/progress.json")
            assert store.exists("async/s/r/outcome.json") is False
        else:
            with pytest.raises(ClientError):
                store.get("async/s/r/progress.json")
            with pytest.raises(ClientError):
                store.exists("async/s/r/outcome.json")
        stubber.assert_no_pending_responses()
