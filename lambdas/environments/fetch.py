"""Fetch a built environment into a local cache, check it, and put it on ``sys.path``.

Instances (ECS tasks, EKS pods, the local platform's launchers) call
:func:`fetch_environment` before the service class loads: the manifest, then the archive,
whose SHA-256 must be the manifest's (a changed or truncated archive is refused, never
imported), unpacked into ``<cache>/<digest>`` through a staging directory and a rename,
so a crash leaves nothing half-unpacked and concurrent starts on one host agree. A cache
entry already complete (a restarted task on a warm disk, a second pod on the node) is used
without a download. :func:`activate` puts it first on ``sys.path``, ``.pth`` files included.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import site
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from flowhost.errors import DeployError, NotFoundError
from flowhost.lambdas.environments.layout import EnvironmentManifest, manifest_key
from flowhost.lambdas.objectstore import ObjectStore

__all__ = ["EnvironmentUnavailable", "Fetched", "activate", "fetch_environment"]

log = logging.getLogger("flowhost.environments")

_MARKER = ".flowhost-environment"  # the archive's sha256, written last


class EnvironmentUnavailable(DeployError):
    """The version's environment cannot be fetched, checked or unpacked: the instance
    cannot start (locally its start fails as a deploy error, backed off and reported)."""

    code = "environment_unavailable"
    status = 424


@dataclass(frozen=True)
class Fetched:
    path: Path
    cached: bool  # True: the cache had it, nothing was downloaded
    seconds: float
    archive_bytes: int
    unpacked_bytes: int


def _manifest(objects: ObjectStore, digest: str) -> EnvironmentManifest:
    try:
        return EnvironmentManifest.model_validate_json(objects.get(manifest_key(digest)))
    except NotFoundError:
        raise EnvironmentUnavailable(
            f"environment {digest}: not built (no {manifest_key(digest)} in the platform "
            "bucket). Deploy the version again: the deploy builds its environment."
        ) from None


def fetch_environment(objects: ObjectStore, digest: str, cache: Path) -> Fetched:
    """The unpacked environment ``digest`` under ``cache``, fetched and checked if needed."""
    started = time.monotonic()
    target = cache / digest
    marker = target / _MARKER
    if marker.is_file():
        manifest = _manifest(objects, digest)
        if marker.read_text() == manifest.archive_sha256:
            return Fetched(target, True, time.monotonic() - started, 0, manifest.unpacked_bytes)
    manifest = _manifest(objects, digest)
    try:
        archive = objects.get(manifest.archive)
    except NotFoundError:
        raise EnvironmentUnavailable(
            f"environment {digest}: its archive {manifest.archive} is missing. Delete "
            f"environments/{digest}/ from the platform bucket and deploy again to rebuild it."
        ) from None
    actual = hashlib.sha256(archive).hexdigest()
    if actual != manifest.archive_sha256 or len(archive) != manifest.archive_bytes:
        raise EnvironmentUnavailable(
            f"environment {digest}: the archive does not match its manifest (sha256 {actual}, "
            f"{len(archive)} bytes; expected {manifest.archive_sha256}, "
            f"{manifest.archive_bytes} bytes), so it is not used. Delete "
            f"environments/{digest}/ from the platform bucket and deploy again to rebuild it."
        )
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache, prefix=".unpack-"))
    try:
        try:
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
                tar.extractall(staging, filter="data")  # no absolute paths, no escapes
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise EnvironmentUnavailable(
                f"environment {digest}: the archive cannot be unpacked ({exc}). Check the "
                f"space under {cache} (FLOWHOST_ENV_CACHE) and deploy again."
            ) from None
        (staging / _MARKER).write_text(manifest.archive_sha256)
        shutil.rmtree(target, ignore_errors=True)  # a stale or partial entry
        try:
            staging.rename(target)
        except OSError:  # another start on this host unpacked it first
            if not marker.is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    seconds = time.monotonic() - started
    log.info(
        "environment fetched",
        extra={"fields": {"digest": digest, "bytes": len(archive), "seconds": round(seconds, 3)}},
    )
    return Fetched(target, False, seconds, len(archive), manifest.unpacked_bytes)


def activate(path: Path) -> None:
    """Put ``path`` first on ``sys.path`` (its ``.pth`` files processed), so the
    environment's packages win over anything else installed with the interpreter."""
    before = list(sys.path)
    site.addsitedir(str(path))
    added = [p for p in sys.path if p not in before]
    sys.path[:] = added + before
