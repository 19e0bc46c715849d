"""The ObjectStore port: code packages, artifacts, async payloads and results.

Locally a directory (the embedded default); on AWS an S3 bucket. Keys are
slash-separated paths like ``packages/sha256-<hex>.tar.gz``. ``put_if_absent`` is a
create-only write: of two concurrent writers of one key exactly one wins, and readers
never see a partial object.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Protocol

from flowhost.errors import NotFoundError, StateStorageFullError

__all__ = ["LocalObjectStore", "ObjectStore"]


class ObjectStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist yet; False (nothing written) if it did."""
        ...

    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def presigned_url(self, key: str, seconds: int) -> str | None:
        """A URL that reads ``key`` for ``seconds`` without credentials, if the store
        has such URLs (S3 does; a local directory does not)."""
        ...


class LocalObjectStore:
    """Objects as files under ``root``; writes are atomic (write to temp, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"object key escapes the store (got {key!r})")
        return path

    def _staged(self, path: Path, data: bytes) -> str:
        """``data`` in a temporary file beside ``path``, complete on disk."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise StateStorageFullError(
                f"the object store at {self.root}: the disk is full; nothing was written "
                f"(got {len(data)} bytes to store). Free space in {self.root} (or give it a "
                "larger volume); writes work again as soon as there is room."
            ) from exc
        return tmp

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        os.replace(self._staged(path, data), path)

    def presigned_url(self, key: str, seconds: int) -> str | None:
        return None  # the local platform serves results itself, whatever their size

    def put_if_absent(self, key: str, data: bytes) -> bool:
        # link(2) fails if the name exists: atomic create-only, and the file is complete
        # before it gets the name.
        path = self._path(key)
        tmp = self._staged(path, data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True

    def get(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise NotFoundError(f"no object {key!r} in the object store at {self.root}.")
        return path.read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
