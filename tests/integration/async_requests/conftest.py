"""Fixtures of the async-request suite: the same tests on two platforms' ports.

``platform`` is parametrized: ``local`` is a LocalQueue file, a LocalObjectStore
directory and the request store on SQLite; ``aws`` is SQSQueue and S3ObjectStore
through real boto3 clients against the session's moto server, with the request store on
SQLite. ``make_service`` builds the control plane's ``AsyncRequests`` on them and
``start_worker`` a real instance (``create_app`` with ``QueueJobs``) consuming the
version's queue. Timers are short: a 1 s visibility, a 0.1 s retry backoff.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from flowhost.errors import NotFoundError
from flowhost.lambdas.async_requests import AsyncRequests, AsyncSettings, LocalQueues
from flowhost.lambdas.callbacks import CallbackPolicy
from flowhost.lambdas.objectstore import LocalObjectStore
from flowhost.lambdas.queue import LocalQueue, Queue, SQSQueue
from flowhost.lambdas.s3objects import S3ObjectStore
from flowhost.lambdas.store import StateStore
from flowhost.lambdas.store.records import VersionRecord
from flowhost.lambdas.store.requests import RequestStore
from flowhost.services.runtime import worker as worker_module
from flowhost.services.runtime.app import create_app
from flowhost.services.runtime.settings import RuntimeSettings
from tests.integration.async_requests.service import SERVICE, AsyncProbe
from tests.integration.async_requests.support import (
    FAST_CALLBACKS,
    MAX_RECEIVES,
    RESULT_TTL,
    RETRY_BACKOFF,
    SECRET,
    VERSION,
    VISIBILITY,
    Platform,
    Receiver,
    ReceiverFactory,
    ServiceFactory,
    SQSQueues,
    WorkerFactory,
    WorkerHost,
    version_record,
)


def _local_platform(tmp_path: Path, engine: Engine) -> Iterator[Platform]:
    root = tmp_path / "objects"
    queues = LocalQueues(tmp_path / "queues.db", max_receive_count=MAX_RECEIVES)

    def list_keys(prefix: str) -> list[str]:
        base = root / prefix
        if not base.exists():
            return []
        return [
            p.relative_to(root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        ]

    def open_handle() -> Queue:
        return LocalQueue(
            tmp_path / "queues.db", queues.queue(SERVICE, VERSION).name,
            max_receive_count=MAX_RECEIVES,
        )  # fmt: skip

    platform = Platform(
        "local", engine, RequestStore(engine), LocalObjectStore(root), queues, list_keys,
        open_handle,
    )  # fmt: skip
    try:
        yield platform
    finally:
        for queue in platform.opened:
            queue.close()
        queues.close()


def _aws_platform(aws_client: Callable[[str], Any], engine: Engine) -> Iterator[Platform]:
    sqs, s3 = aws_client("sqs"), aws_client("s3")
    tag = uuid.uuid4().hex[:10]
    bucket = f"flowhost-async-{tag}"
    s3.create_bucket(Bucket=bucket)
    queues = SQSQueues(sqs, prefix=f"t{tag}", max_receive_count=MAX_RECEIVES)

    def list_keys(prefix: str) -> list[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"platform/{prefix}"
        )
        return [
            str(o["Key"]).removeprefix("platform/")
            for page in pages
            for o in page.get("Contents", [])
        ]

    def open_handle() -> Queue:
        shared = queues.queue(SERVICE, VERSION)
        return SQSQueue(sqs, shared.url, shared.dead_letter_url, max_receive_count=MAX_RECEIVES)

    platform = Platform(
        "aws", engine, RequestStore(engine), S3ObjectStore(s3, bucket, prefix="platform"),
        queues, list_keys, open_handle,
    )  # fmt: skip
    try:
        yield platform
    finally:
        queues.close()


@pytest.fixture(params=["local", "aws"])
def platform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Platform]:
    state = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    state.migrate()
    try:
        if request.param == "local":
            yield from _local_platform(tmp_path, state.engine)
        else:
            yield from _aws_platform(request.getfixturevalue("aws_client"), state.engine)
    finally:
        state.close()


@pytest.fixture
def make_service(platform: Platform) -> ServiceFactory:
    """``make_service(result_ttl=..., callback=...)``: the control plane's AsyncRequests."""
    version = version_record()

    def resolve(service: str, ref: str | None) -> VersionRecord:
        if service != SERVICE or ref not in (None, "production", "v1"):
            raise NotFoundError(f"no service {service!r} at {ref!r}")
        return version

    def make(
        *, result_ttl: float = RESULT_TTL, callback: CallbackPolicy = FAST_CALLBACKS
    ) -> AsyncRequests:
        settings = AsyncSettings(
            result_ttl=result_ttl, max_attempts=MAX_RECEIVES, visibility=VISIBILITY,
            retry_backoff=RETRY_BACKOFF, sweep_interval=0.1, callback=callback,
        )  # fmt: skip
        return AsyncRequests(
            platform.requests, platform.objects, platform.queues, resolve,
            settings=settings, secret=SECRET, public_url="http://127.0.0.1:9/",
            versions=lambda: [(SERVICE, VERSION)],
        )  # fmt: skip

    return make


@pytest.fixture
def start_worker(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkerFactory]:
    """``start_worker(result_ttl=...)``: a real instance of AsyncProbe whose worker takes
    the version's jobs; stopped at the end of the test."""
    # A shorter long poll, so stopping the worker (which waits for the receive in
    # progress) is quick; SQS rounds it up to 1 s anyway.
    monkeypatch.setattr(worker_module, "RECEIVE_WAIT", 0.25)
    hosts: list[WorkerHost] = []

    def start(*, result_ttl: float = RESULT_TTL) -> WorkerHost:
        app = create_app(
            AsyncProbe,
            RuntimeSettings(version=f"v{VERSION}", threads=4, access_log=False),
            jobs=lambda: platform.jobs(result_ttl=result_ttl),
        )
        host = WorkerHost(app)
        hosts.append(host)
        host.start()
        return host

    yield start
    for host in hosts:
        host.stop()


@pytest.fixture
def receiver() -> Iterator[ReceiverFactory]:
    """``receiver(failures)``: a callback receiver on 127.0.0.1, closed afterwards."""
    made: list[Receiver] = []

    def make(failures: int) -> Receiver:
        receiver = Receiver(failures)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()
