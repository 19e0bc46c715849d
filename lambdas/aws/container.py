"""The serving container's bootstrap: the runtime image's entry point on ECS and EKS.

``python -m flowhost.lambdas.aws.container`` reads the environment ``ServiceSpec`` sets
(:class:`ContainerSettings`), downloads the version's code package from S3 and checks
its digest (:func:`fetch_package`; a warm ``/tmp`` from a restart is reused), loads the
service class from it and serves it on ``FLOWHOST_PORT``. A version with an environment
(``FLOWHOST_ENVIRONMENT_DIGEST``) fetches it first, checks its SHA-256 against its
manifest and puts it first on ``sys.path`` (:mod:`flowhost.lambdas.environments.fetch`;
kept under ``FLOWHOST_ENV_CACHE`` for the next start on the same disk). With
``FLOWHOST_ASYNC=on`` (the default) the instance also takes asynchronous jobs from the
version's SQS queue once it is ready (:func:`queue_jobs`): payloads and results in the
platform bucket, outcomes kept by an ``ObjectLedger`` there (tasks have no database
access).

Before it serves, the instance checks that it can read its artifacts (the pinned
``FLOWHOST_RUN`` in the binding's or the platform's Metaflow namespace, see
:mod:`flowhost.lambdas.aws.metaflow`). Settings errors and unreadable artifacts exit
with 2, a package or class that cannot be loaded with 1; each prints one line to stderr.
SIGTERM stops the server gracefully, then the process (exit 0).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from flowhost.errors import FlowhostError
from flowhost.lambdas.aws.container_settings import ContainerSettings, ContainerSettingsError
from flowhost.lambdas.aws.errors import error_code
from flowhost.lambdas.aws.metaflow import apply_metaflow_settings, pin_artifacts
from flowhost.lambdas.environments.fetch import activate, fetch_environment
from flowhost.lambdas.jobs import QueueJobs
from flowhost.lambdas.ledger import ObjectLedger
from flowhost.lambdas.queue.port import QueueError
from flowhost.lambdas.queue.sqs import SQSQueue
from flowhost.lambdas.s3objects import S3ObjectStore
from flowhost.services.loader import load_service
from flowhost.services.packaging import package_digest, unpack
from flowhost.services.runtime.jobs import JobSource
from flowhost.services.runtime.logs import configure_logging
from flowhost.services.runtime.server import serve
from flowhost.services.spec import WebServiceSpec, definition_of

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client
    from types_boto3_sqs import SQSClient

__all__ = ["PackageError", "fetch_package", "load_class", "main", "queue_jobs"]

log = logging.getLogger("flowhost.container")

_MISSING = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchBucket"})
_MARKER = ".flowhost-digest"  # dot-files are never part of a package (see packaging)


class PackageError(FlowhostError):
    """The code package cannot be fetched, checked or loaded."""

    code = "package_unavailable"
    status = 424


def _split(uri: str) -> tuple[str, str]:
    bucket, sep, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not sep or not bucket or not key:
        raise PackageError(f"code package: not an S3 URI (got {uri!r}). Use s3://<bucket>/<key>.")
    return bucket, key


def fetch_package(s3_client: S3Client, uri: str, digest: str, target: Path) -> Path:
    """Download the package at ``uri``, check it has ``digest`` and unpack it into
    ``target/<digest>`` (returned). A directory already there for the digest (a restarted
    task with a warm ``/tmp``) is used as is, without a download."""
    bucket, key = _split(uri)
    code = target / digest
    if (code / _MARKER).is_file() and (code / _MARKER).read_text() == digest:
        log.info("code package already unpacked", extra={"fields": {"path": str(code)}})
        return code
    try:
        response = s3_client.get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        try:
            archive = body.read()
        finally:
            body.close()
    except ClientError as exc:
        if error_code(exc) in _MISSING:
            raise PackageError(
                f"code package {uri}: no such object ({error_code(exc)}). Deploy the version "
                "again (ServiceSpec uploads the package), or fix FLOWHOST_CODE_PACKAGE."
            ) from None
        raise PackageError(
            f"code package {uri}: S3 GetObject failed ({error_code(exc)}). Check the task "
            "role's s3:GetObject on packages/* and the bucket's region."
        ) from None
    except BotoCoreError as exc:
        raise PackageError(
            f"code package {uri}: S3 GetObject failed ({exc}). Check the network path to S3 "
            "(a VPC endpoint or NAT) and the credentials."
        ) from None
    try:
        actual = package_digest(archive)
    except (OSError, EOFError, zlib.error):
        raise PackageError(
            f"code package {uri}: not a gzip archive ({len(archive)} bytes). Upload what "
            "flowhost built (ServiceSpec or flowhost deploy)."
        ) from None
    if actual != digest:
        raise PackageError(
            f"code package {uri}: digest mismatch (got {actual}, expected {digest}). The "
            "object was changed after upload; deploy the version again."
        )
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target, prefix=".unpack-"))
    try:
        unpack(archive, staging)
        (staging / _MARKER).write_text(digest)
        shutil.rmtree(code, ignore_errors=True)  # a partial leftover of an earlier start
        staging.rename(code)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("code package unpacked", extra={"fields": {"uri": uri, "path": str(code)}})
    return code


def load_class(settings: ContainerSettings, code: Path) -> type[WebServiceSpec]:
    """The service class the entry point names, checked against what was deployed."""
    cls = load_service(str(code / settings.entrypoint))
    definition = definition_of(cls)
    if definition.name != settings.service:
        raise PackageError(
            f"{settings.entrypoint}: the class serves {definition.name!r}, not the deployed "
            f"service (got FLOWHOST_SERVICE={settings.service!r}). Deploy the package built "
            "from this service's class."
        )
    declared = definition.artifacts.flow if definition.artifacts else None
    if settings.artifact_flow is not None and settings.artifact_flow != declared:
        raise PackageError(
            f"{settings.entrypoint}: the class binds flow {declared!r}, not the deployed one "
            f"(got FLOWHOST_ARTIFACT_FLOW={settings.artifact_flow!r}). Deploy the service again."
        )
    return cls


def _max_receive_count(sqs: SQSClient, url: str) -> int:
    """The queue's ``maxReceiveCount``, from its RedrivePolicy (ServiceSpec sets it)."""
    try:
        found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    except (ClientError, BotoCoreError) as exc:
        raise QueueError(
            f"queue {url}: SQS GetQueueAttributes failed ({exc}). Check the task role's "
            "sqs:GetQueueAttributes on the version's queue and FLOWHOST_QUEUE_URL."
        ) from None
    raw = found.get("Attributes", {}).get("RedrivePolicy")
    if raw is None:
        raise QueueError(
            f"queue {url}: it has no RedrivePolicy (got none). Create the version's queues "
            "with ServiceSpec, which gives them a dead-letter queue."
        )
    return int(json.loads(raw)["maxReceiveCount"])


def queue_jobs(settings: ContainerSettings, s3: S3Client, sqs: SQSClient) -> QueueJobs:
    """The instance's JobSource: the version's SQS queue, the platform bucket."""
    queue = SQSQueue(
        sqs,
        settings.queue_url,
        settings.dead_letter_queue_url,
        max_receive_count=_max_receive_count(sqs, settings.queue_url),
    )
    # The task's role reads its own prefix but may not list the bucket: S3 says 403, not
    # 404, for the ledger's not-yet-written objects.
    objects = S3ObjectStore(
        s3, settings.bucket, kms_key_id=settings.kms_key_arn, denied_is_missing=True
    )
    return QueueJobs(
        queue,
        objects,
        ObjectLedger(objects, settings.service),
        service=settings.service,
        version=settings.version,
        result_ttl=settings.result_ttl,
        visibility=settings.async_visibility,
        retry_backoff=settings.async_retry_backoff,
    )


def _stopped(signum: int, frame: object) -> None:
    """SIGTERM once serving: uvicorn handles it (a graceful shutdown: requests finish,
    running jobs are handed back) and raises it again when done; that ends here, with 0."""
    raise SystemExit(0)


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"flowhost container: {message}\n")
    sys.stderr.flush()
    return code


def main(env: Mapping[str, str] | None = None) -> int:
    """Settings, package, class, then serve until SIGTERM. Returns the exit code."""
    try:
        settings = ContainerSettings.from_env(os.environ if env is None else env)
    except ContainerSettingsError as exc:
        return _fail(exc.message, 2)
    configure_logging("info")
    session = boto3.Session(region_name=settings.region)  # endpoint: AWS_ENDPOINT_URL, if set
    s3: S3Client = session.client("s3")  # pyright: ignore[reportUnknownMemberType]
    try:  # before anything imports Metaflow (the service's own code may)
        apply_metaflow_settings(lambda: session.client("secretsmanager"))  # pyright: ignore[reportUnknownMemberType, reportUnknownLambdaType]
    except FlowhostError as exc:
        return _fail(exc.message, 2)
    try:
        if settings.environment_digest is not None:  # before anything of the service loads
            objects = S3ObjectStore(s3, settings.bucket, denied_is_missing=True)
            fetched = fetch_environment(
                objects, settings.environment_digest, settings.environment_cache
            )
            activate(fetched.path)
            log.info(
                "environment ready",
                extra={"fields": {"digest": settings.environment_digest, "cached": fetched.cached,
                                  "seconds": round(fetched.seconds, 3)}},
            )  # fmt: skip
        code = fetch_package(s3, settings.code_package, settings.code_digest, settings.code_dir)
        os.chdir(code)  # as the local platform runs instances: relative paths work the same
        cls = load_class(settings, code)
    except FlowhostError as exc:
        return _fail(exc.message, 1)
    try:  # a task that cannot read its artifacts stops here, before it takes traffic
        run = pin_artifacts(definition_of(cls).artifacts, settings.run, settings.metaflow_namespace)
    except FlowhostError as exc:
        return _fail(exc.message, 2)
    jobs: Callable[[], JobSource] | None = None
    if settings.async_jobs:
        sqs: SQSClient = session.client("sqs")  # pyright: ignore[reportUnknownMemberType]
        jobs = lambda: queue_jobs(settings, s3, sqs)  # noqa: E731  (called once ready)
    signal.signal(signal.SIGTERM, _stopped)
    return serve(
        cls, host=settings.host, port=settings.port, jobs=jobs,
        settings=settings.runtime().model_copy(update={"run": run}),
        service_prefix=settings.service,  # the load balancer forwards /{service}/... as is
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
