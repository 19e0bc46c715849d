"""Callback signatures: what the platform signs, a receiver verifies, and nothing else."""

from __future__ import annotations

import pytest

from flowhost.callbacks import SignatureError, sign, verify_signature

SECRET = b"s3cret-for-tests"
BODY = b'{"id": "req_1", "status": "succeeded"}'
NOW = 1_800_000_000


def test_a_signed_body_verifies() -> None:
    verify_signature(SECRET, sign(SECRET, BODY, timestamp=NOW), BODY, now=NOW + 10)


def test_the_header_shape() -> None:
    header = sign(SECRET, BODY, timestamp=NOW)
    t, v1 = header.split(",")
    assert t == f"t={NOW}"
    assert v1.startswith("v1=")
    assert len(v1) == 3 + 64


@pytest.mark.parametrize(
    ("secret", "body", "match"),
    [
        (b"another-secret", BODY, "does not match the body"),
        (SECRET, BODY + b" ", "does not match the body"),
    ],
)
def test_a_wrong_secret_or_a_changed_body_is_refused(
    secret: bytes, body: bytes, match: str
) -> None:
    with pytest.raises(SignatureError, match=match):
        verify_signature(secret, sign(SECRET, BODY, timestamp=NOW), body, now=NOW)


def test_an_old_signature_is_a_replay() -> None:
    header = sign(SECRET, BODY, timestamp=NOW)
    with pytest.raises(SignatureError, match="more than 300s away from now"):
        verify_signature(SECRET, header, BODY, now=NOW + 301)


@pytest.mark.parametrize("header", [None, "", "garbage", "t=abc,v1=00", "v1=00"])
def test_missing_or_malformed_headers_are_refused(header: str | None) -> None:
    with pytest.raises(SignatureError, match="Flowhost-Signature"):
        verify_signature(SECRET, header, BODY, now=NOW)
