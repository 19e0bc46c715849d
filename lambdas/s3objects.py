"""The ObjectStore port on AWS: one S3 bucket, keys under an optional prefix.

Writes are server-side encrypted with the platform's KMS key when one is given;
reads of a missing key raise ``NotFoundError`` like the local store. ``put_if_absent``
is S3's conditional write (``If-None-Match: *``): 412 means the key exists.

S3 answers a read of a missing key with 404 only to callers that may list the bucket;
to others it says 403, so as not to tell them what exists. A serving task's role may
read its own prefix but not list the bucket (that would show every service's keys), so
its store is made with ``denied_is_missing=True``: a 403 on a read counts as missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from flowhost.errors import NotFoundError

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

__all__ = ["S3ObjectStore"]

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_DENIED = frozenset({"AccessDenied", "403", "Forbidden"})
_EXISTS = frozenset({"PreconditionFailed", "412"})
# A conditional write racing another one on the same key; S3 asks to retry it.
_CONFLICT = frozenset({"ConditionalRequestConflict", "409"})
_CONFLICT_RETRIES = 3


def _code(exc: ClientError) -> str | None:
    return exc.response.get("Error", {}).get("Code")


class S3ObjectStore:
    """``put``/``put_if_absent``/``get``/``exists``/``delete`` on ``s3://bucket/prefix/key``."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        prefix: str = "",
        kms_key_id: str | None = None,
        denied_is_missing: bool = False,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.kms_key_id = kms_key_id
        # Without s3:ListBucket, S3 says 403 for a missing key (see the module's docstring).
        self._missing = _MISSING | _DENIED if denied_is_missing else _MISSING

    def _key(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"object key escapes the store (got {key!r})")
        return self.prefix + key

    def _put_args(self, key: str, data: bytes) -> dict[str, Any]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key), "Body": data}
        if self.kms_key_id is not None:
            args.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=self.kms_key_id)
        return args

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(**self._put_args(key, data))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        args = self._put_args(key, data)
        attempt = 1
        while True:
            try:
                self.client.put_object(**args, IfNoneMatch="*")
            except ClientError as exc:
                if _code(exc) in _EXISTS:
                    return False
                if _code(exc) not in _CONFLICT or attempt == _CONFLICT_RETRIES:
                    raise
                attempt += 1  # once the other write settles, this one meets 412 or wins
                continue
            return True

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in self._missing:
                raise NotFoundError(
                    f"no object {key!r} in s3://{self.bucket}/{self.prefix}."
                ) from None
            raise
        body = response["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in self._missing:
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def presigned_url(self, key: str, seconds: int) -> str | None:
        """A GET URL for ``key``, signed with the caller's credentials for ``seconds``."""
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self._key(key)},
            ExpiresIn=seconds,
        )
