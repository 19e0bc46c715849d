"""The environment build: ``python -m flowhost.lambdas.environments.job --digest D``.

Runs where the package index is reachable: on AWS as the platform stack's build task
(the runtime image, so the lock and the bytecode fit the serving runtime exactly); on one
machine as a subprocess of the local platform (``--objects DIR``). It reads the request
from the object store, locks, installs, packs and uploads the archive and its manifest,
rewriting ``build.json`` as it goes, so whoever waits on the build sees its lines.

Exit codes: 0 built (or already built), 1 the build failed (``build.json`` says why),
2 bad settings (one line on stderr).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from flowhost.errors import NotFoundError
from flowhost.lambdas.environments.install import (
    BuildFailed,
    IndexAccess,
    index_from_env,
    install,
    lock,
    pack,
    split_lock,
)
from flowhost.lambdas.environments.layout import (
    BuildStatus,
    EnvironmentManifest,
    archive_key,
    build_key,
    manifest_key,
    request_key,
)
from flowhost.lambdas.environments.request import EnvironmentRequest, runtime_pins
from flowhost.lambdas.objectstore import LocalObjectStore, ObjectStore
from flowhost.lambdas.store.models import utcnow

__all__ = ["BuildReport", "build", "main"]

_MAX_LINES = 200  # build.json keeps the last lines; the task's log has them all


class BuildReport:
    """``build.json``, rewritten at most every ``interval`` seconds and at the end."""

    def __init__(self, objects: ObjectStore, digest: str, *, interval: float = 1.0) -> None:
        self.objects = objects
        self.digest = digest
        self.interval = interval
        self.lines: list[str] = []
        self._written = 0.0

    def line(self, text: str) -> None:
        print(text, flush=True)  # the task's own log
        self.lines.append(text[:500])
        if time.monotonic() - self._written >= self.interval:
            self._write("building")

    def done(self, state: str, error: str | None = None) -> None:
        self._write(state, error)

    def _write(self, state: str, error: str | None = None) -> None:
        status = BuildStatus(
            digest=self.digest, state=state, lines=self.lines[-_MAX_LINES:],  # pyright: ignore[reportArgumentType]
            error=error, updated_at=utcnow(),
        )  # fmt: skip
        self.objects.put(build_key(self.digest), status.model_dump_json().encode())
        self._written = time.monotonic()


def build(
    objects: ObjectStore,
    digest: str,
    request: EnvironmentRequest,
    *,
    index: IndexAccess,
    work: Path,
    report: BuildReport,
) -> EnvironmentManifest:
    """Build the environment ``digest`` names from its ``request``."""
    started = time.monotonic()
    wanted = request.packages
    report.line(
        f"locking {len(wanted)} requirement{'s' * (len(wanted) != 1)} "
        f"({', '.join(wanted)}) for {request.target.describe()}"
    )
    here = runtime_pins()  # the runtime this build runs in: the one that serves
    if here != request.runtime:
        report.line(
            "the runtime's pins differ from the control plane's; the lock keeps this "
            "runtime's (the image versions run)"
        )
        request = request.model_copy(update={"runtime": here})
    lock_text = lock(request, work, index=index, log=report.line)
    to_install, provided = split_lock(lock_text, request.runtime)
    report.line(
        f"locked {len(to_install) + len(provided)} packages: {len(to_install)} to install, "
        f"{len(provided)} already in the runtime"
    )
    target = install(request, list(to_install), work, index=index, log=report.line)
    packed = pack(target)
    report.line(
        f"packed {packed.files} files, {packed.unpacked_bytes / 1e6:.1f} MB "
        f"({len(packed.data) / 1e6:.1f} MB compressed)"
    )
    lock_digest = (
        "sha256-"
        + hashlib.sha256(
            f"{request.target.python};{request.target.platform};{lock_text}".encode()
        ).hexdigest()
    )
    key = archive_key(digest)
    objects.put(key, packed.data)
    manifest = EnvironmentManifest(
        digest=digest, python=request.target.python, platform=request.target.platform,
        lock=lock_text, lock_digest=lock_digest, packages=list(to_install.values()),
        archive=key, archive_sha256=packed.sha256, archive_bytes=len(packed.data),
        unpacked_bytes=packed.unpacked_bytes, files=packed.files, built_at=utcnow(),
        build_seconds=round(time.monotonic() - started, 3),
    )  # fmt: skip
    objects.put(manifest_key(digest), manifest.model_dump_json(indent=2).encode())
    report.line(f"built {digest[:19]}...: {manifest.summary()}")
    return manifest


def _objects(args: argparse.Namespace, env: Mapping[str, str]) -> ObjectStore:
    if args.objects is not None:
        return LocalObjectStore(Path(args.objects))
    bucket = env.get("FLOWHOST_BUCKET")
    if not bucket:
        raise BuildFailed(
            "FLOWHOST_BUCKET is not set. The platform stack's build task sets it; "
            "locally pass --objects <the platform's object directory>"
        )
    import boto3

    from flowhost.lambdas.s3objects import S3ObjectStore

    session = boto3.Session(region_name=env.get("AWS_REGION"))
    client = session.client("s3")  # pyright: ignore[reportUnknownMemberType]
    return S3ObjectStore(client, bucket, kms_key_id=env.get("FLOWHOST_KMS_KEY_ARN") or None)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(prog="python -m flowhost.lambdas.environments.job")
    parser.add_argument("--digest", required=True, help="the environment to build")
    parser.add_argument("--objects", help="a local object store directory (default: S3)")
    args = parser.parse_args(argv)
    try:
        objects = _objects(args, env)
        if objects.exists(manifest_key(args.digest)):
            print(f"{args.digest}: already built", flush=True)
            return 0
        request = EnvironmentRequest.model_validate_json(objects.get(request_key(args.digest)))
        index = index_from_env(env, request.target.index_url)
    except (BuildFailed, NotFoundError, ValueError) as exc:
        sys.stderr.write(f"flowhost environment build: {exc}\n")
        return 2
    report = BuildReport(objects, args.digest)
    work = Path(tempfile.mkdtemp(prefix="flowhost-env-"))
    try:
        build(objects, args.digest, request, index=index, work=work, report=report)
    except BuildFailed as exc:
        report.line(f"failed: {exc}")
        report.done("failed", str(exc))
        return 1
    except Exception as exc:  # the waiting deploys must hear of it, whatever it was
        report.line(f"failed: {type(exc).__name__}: {index.redact(str(exc))}")
        report.done("failed", f"the build stopped: {type(exc).__name__}: {index.redact(str(exc))}")
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.done("built")
    return 0


if __name__ == "__main__":
    sys.exit(main())
