"""The ObjectStore port on AWS: one S3 bucket, keys under an optional prefix.

Writes are server-side encrypted with the platform's KMS key when one is given;
reads of a missing key raise ``NotFoundError`` like the local store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from flowhost.errors import NotFoundError

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

__all__ = ["S3ObjectStore"]

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


class S3ObjectStore:
    """``put``/``get``/``exists``/``delete`` on ``s3://bucket/prefix/key``."""

    def __init__(
        self, client: S3Client, bucket: str, *, prefix: str = "", kms_key_id: str | None = None
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.kms_key_id = kms_key_id

    def _key(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"object key escapes the store (got {key!r})")
        return self.prefix + key

    def put(self, key: str, data: bytes) -> None:
        if self.kms_key_id is None:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        else:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data,
                ServerSideEncryption="aws:kms", SSEKMSKeyId=self.kms_key_id,
            )  # fmt: skip

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
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
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
