"""Outcomes recorded as objects (ObjectLedger), as ECS tasks record them on AWS, and the
control plane settling them into the request records: on the local directory store and
on S3 + SQS (moto), through the suite's harness.

The worker side is QueueJobs over ``ObjectLedger(objects, service)`` (no database); the
control plane is AsyncRequests with ``settle_outcomes`` on, the only one to touch the
records.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flowhost.callbacks import verify_signature
from flowhost.lambdas.async_requests import AsyncRequests
from flowhost.lambdas.async_requests.service import RequestFailed, RequestNotReady
from flowhost.lambdas.jobs import (
    DEFAULT_JOB_TIMEOUT,
    QueueJobs,
    job_message,
    outcome_key,
    payload_key,
    progress_key,
    read_detail,
)
from flowhost.lambdas.ledger import ObjectLedger, read_outcome, read_progress
from flowhost.lambdas.objectstore import LocalObjectStore
from flowhost.lambdas.s3objects import S3ObjectStore
from flowhost.services.runtime import worker as worker_module
from flowhost.services.runtime.app import create_app
from flowhost.services.runtime.settings import RuntimeSettings
from tests.integration.async_requests.service import SERVICE, AsyncProbe, runs
from tests.integration.async_requests.support import (
    MAX_RECEIVES,
    RESULT_TTL,
    RETRY_BACKOFF,
    SECRET,
    VERSION,
    VISIBILITY,
    Platform,
    ReceiverFactory,
    ServiceFactory,
    WorkerHost,
    run_sweeper,
)
from tests.integration.async_requests.test_async_requests import (
    request_prefix,
    submit,
    unique,
    wait_status,
    when,
)
from tests.integration.support import poll

pytestmark = pytest.mark.timeout(60)

TTL = timedelta(seconds=RESULT_TTL)


def ledger_jobs(platform: Platform, *, result_ttl: float = RESULT_TTL) -> QueueJobs:
    """The instance's JobSource as an ECS task builds it: the ledger, not the records."""
    return QueueJobs(
        platform.open_queue(), platform.objects, ObjectLedger(platform.objects, SERVICE),
        service=SERVICE, version=VERSION, result_ttl=result_ttl,
        visibility=VISIBILITY, retry_backoff=RETRY_BACKOFF,
    )  # fmt: skip


@pytest.fixture
def control_plane(make_service: ServiceFactory) -> Callable[..., AsyncRequests]:
    """``control_plane(...)``: ``make_service`` with settling on, as on AWS."""

    def make(**options: Any) -> AsyncRequests:
        service = make_service(**options)
        settings = replace(service.settings, settle_outcomes=True)
        return AsyncRequests(
            service.requests, service.objects, service.queues, service.resolve,
            settings=settings, secret=service.secret, public_url=service.public_url,
            versions=service.versions,
        )  # fmt: skip

    return make


@pytest.fixture
def start_ledger_worker(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], WorkerHost]]:
    """A real instance of AsyncProbe whose worker records through an ObjectLedger."""
    monkeypatch.setattr(worker_module, "RECEIVE_WAIT", 0.25)
    hosts: list[WorkerHost] = []

    def start() -> WorkerHost:
        settings = RuntimeSettings(version=f"v{VERSION}", threads=4, access_log=False)
        host = WorkerHost(create_app(AsyncProbe, settings, jobs=lambda: ledger_jobs(platform)))
        hosts.append(host)
        host.start()
        return host

    yield start
    for host in hosts:
        host.stop()


# -- put_if_absent ------------------------------------------------------------------------


def test_put_if_absent_writes_once_even_when_writers_race(platform: Platform) -> None:
    objects = platform.objects
    assert objects.put_if_absent("async/x/once.json", b"first")
    assert not objects.put_if_absent("async/x/once.json", b"second")
    assert objects.get("async/x/once.json") == b"first"

    barrier = threading.Barrier(8)
    won: list[bytes] = []

    def write(data: bytes) -> None:
        barrier.wait()
        if objects.put_if_absent("async/x/raced.json", data):
            won.append(data)

    threads = [threading.Thread(target=write, args=(f"w{i}".encode(),)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(won) == 1, won
    assert objects.get("async/x/raced.json") == won[0]
    if isinstance(objects, LocalObjectStore):  # no temporary files left behind
        assert [p.name for p in Path(objects.root).rglob(".tmp-*")] == []
    objects.delete("async/x/once.json")
    assert objects.put_if_absent("async/x/once.json", b"again")  # absent again: written


def test_s3_put_if_absent_encrypts_with_the_kms_key(aws_client: Callable[[str], Any]) -> None:
    s3, kms = aws_client("s3"), aws_client("kms")
    s3.create_bucket(Bucket="flowhost-ledger-kms")
    key_id = kms.create_key(Description="flowhost ledger test")["KeyMetadata"]["KeyId"]
    store = S3ObjectStore(s3, "flowhost-ledger-kms", prefix="env", kms_key_id=key_id)
    assert store.put_if_absent("async/s/r/outcome.json", b"{}")
    assert not store.put_if_absent("async/s/r/outcome.json", b"[]")
    head = s3.head_object(Bucket="flowhost-ledger-kms", Key="env/async/s/r/outcome.json")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert key_id in head["SSEKMSKeyId"]


# -- the ledger under QueueJobs -----------------------------------------------------------


def test_two_deliveries_keep_one_result_and_a_finished_request_is_skipped(
    platform: Platform, control_plane: Callable[..., AsyncRequests]
) -> None:
    service = control_plane()
    record, _ = submit(service, "echo", {"text": unique("twice")})
    jobs = ledger_jobs(platform)
    [first] = poll("the first delivery", lambda: jobs.receive(1, 0) or None, 10)
    # the first worker stalls past its visibility timeout: the message is delivered again
    [second] = poll("the second delivery", lambda: jobs.receive(1, 0) or None, 10)
    assert (first.attempt, second.attempt) == (1, 2)
    assert first.timeout == second.timeout == 60.0  # from the message: no record here
    progress = read_progress(platform.objects, SERVICE, record.id)
    assert progress is not None
    assert (progress.status, progress.attempts, progress.version) == ("running", 2, VERSION)

    outcomes = [
        jobs.succeed(first, b'{"text": "first", "length": 5}'),
        jobs.succeed(second, b'{"text": "second", "length": 6}'),
    ]
    assert outcomes == [True, False]
    keys = platform.keys(request_prefix(record.id))
    results = [k for k in keys if "/result-" in k]
    assert len(results) == 1, keys  # the loser's result object was deleted again
    assert outcome_key(SERVICE, record.id) in keys
    assert platform.requests.get(record.id).status == "queued"  # the worker wrote no record

    done = service.get(record.id)  # settled on read
    assert (done.status, done.attempts, done.result_key) == ("succeeded", 2, results[0])
    assert platform.requests.get(record.id).status == "succeeded"
    assert json.loads(service.result(record.id)) == {"text": "first", "length": 5}

    # a late redelivery of a finished request: start says so, and it is acknowledged
    ledger = ObjectLedger(platform.objects, SERVICE)
    assert ledger.start(record.id, VERSION) is None
    assert not ledger.retry(record.id, "too late")
    poll("the message to be acknowledged", lambda: platform.queue().depth().total == 0 or None, 5)
    assert jobs.receive(1, 0) == []


def test_concurrent_finishes_record_one_outcome(platform: Platform) -> None:
    ledger = ObjectLedger(platform.objects, SERVICE)
    request_id = unique("req")
    assert ledger.start(request_id, VERSION) is not None
    barrier = threading.Barrier(6)
    won: list[str] = []

    def finish(n: int) -> None:
        barrier.wait()
        key = f"async/{SERVICE}/{request_id}/result-{n}.json"
        if ledger.finish(request_id, "succeeded", ttl=TTL, result_key=key):
            won.append(key)

    threads = [threading.Thread(target=finish, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(won) == 1, won
    outcome = read_outcome(platform.objects, SERVICE, request_id)
    assert outcome is not None
    assert (outcome.status, outcome.result_key, outcome.attempts) == ("succeeded", won[0], 1)
    assert outcome.expires_at - outcome.finished_at == TTL


def test_a_retry_keeps_its_error_until_the_final_failure(
    platform: Platform, control_plane: Callable[..., AsyncRequests]
) -> None:
    service = control_plane()
    record, _ = submit(service, "fail", {"reason": unique("flaky")})
    jobs = ledger_jobs(platform)
    [job] = poll("the first delivery", lambda: jobs.receive(1, 0) or None, 10)
    assert not job.final
    jobs.fail(job, "endpoint_error", "RuntimeError: first", retry=True)
    queued = service.get(record.id)  # not finished: the deliveries so far, shown
    assert (queued.status, queued.attempts) == ("queued", 1)
    assert service.describe(queued)["error"] == {
        "code": "endpoint_error",
        "message": "RuntimeError: first",
    }
    with pytest.raises(RequestNotReady):
        service.result(record.id)

    [last] = poll("the retry", lambda: jobs.receive(1, 0) or None, 10)
    assert (last.attempt, last.final) == (2, True)
    assert service.get(record.id).status == "running"
    assert service.get(record.id).error is not None  # the first error is kept meanwhile
    jobs.fail(last, "endpoint_error", "RuntimeError: second", retry=True)
    failed = service.get(record.id)
    assert (failed.status, failed.attempts) == ("failed", MAX_RECEIVES)
    assert service.describe(failed)["error"]["message"] == "RuntimeError: second"
    with pytest.raises(RequestFailed, match="failed after 2 attempt"):
        service.result(record.id)

    # dead-lettered at the next receive; the sweep keeps the endpoint's error
    def dead_lettered() -> bool | None:
        assert jobs.receive(1, 0) == []
        return platform.queue().depth().total == 0 or None

    poll("the message to leave the queue", dead_lettered, 10)
    service.sweep_once()
    assert service.describe(service.get(record.id))["error"]["message"] == "RuntimeError: second"
    assert platform.queue().dead_letters() == []


def test_the_time_limit_comes_from_the_message_or_the_default(platform: Platform) -> None:
    queue = platform.queue()
    old, new = unique("req_old"), unique("req_new")
    for request_id in (old, new):
        platform.objects.put(payload_key(SERVICE, request_id), b'{"text": "t"}')
    queue.send(job_message(old, "echo", payload_key(SERVICE, old)))  # queued before the field
    queue.send(job_message(new, "echo", payload_key(SERVICE, new), timeout_seconds=42.0))
    jobs = ledger_jobs(platform)
    received: dict[str, float] = {}

    def both() -> bool | None:
        received.update((j.request_id, j.timeout) for j in jobs.receive(10, 0))
        return True if len(received) == 2 else None

    poll("both deliveries", both, 10)
    assert received == {old: DEFAULT_JOB_TIMEOUT, new: 42.0}


def test_with_the_records_as_ledger_the_records_time_limit_wins(
    platform: Platform, make_service: ServiceFactory
) -> None:
    service = make_service()
    record, _ = submit(service, "echo", {"text": unique("local")}, timeout=75.0)
    platform.queue().send(job_message(record.id, "echo", record.payload_key, timeout_seconds=5))
    jobs = platform.jobs()
    timeouts: list[float] = []

    def both() -> bool | None:
        timeouts.extend(j.timeout for j in jobs.receive(10, 0))
        return True if len(timeouts) == 2 else None

    poll("both deliveries", both, 10)
    assert timeouts == [75.0, 75.0]  # the record's, whatever a message says


# -- end to end: a real worker, the control plane polling and sweeping -------------------


def test_outcomes_travel_as_objects_and_the_control_plane_reports_them(
    platform: Platform,
    control_plane: Callable[..., AsyncRequests],
    start_ledger_worker: Callable[[], WorkerHost],
) -> None:
    service = control_plane()
    start_ledger_worker()
    text, reason = unique("hello"), unique("broken")
    ok, _ = submit(service, "echo", {"text": text, "count": 2})
    bad, _ = submit(service, "fail", {"reason": reason})

    done = wait_status(service, ok.id, "succeeded", "failed")
    assert done.status == "succeeded", done.error
    assert (done.attempts, done.version) == (1, VERSION)
    assert json.loads(service.result(ok.id)) == {"text": text * 2, "length": len(text) * 2}
    assert runs(text) == 1
    doc = service.describe(done)
    assert when(doc["started_at"]) <= when(doc["finished_at"]) < when(doc["expires_at"])
    assert when(doc["expires_at"]) - when(doc["finished_at"]) == TTL

    failed = wait_status(service, bad.id, "failed", "succeeded")
    assert failed.attempts == MAX_RECEIVES
    error = service.describe(failed)["error"]
    assert error["code"] == "endpoint_error"
    assert f"'fail' raised RuntimeError; request id {bad.id}." in error["message"]
    assert reason not in json.dumps(service.describe(failed))
    assert runs(reason) == MAX_RECEIVES
    # the exception's text is kept beside the payload, for the control plane's detail route
    detail = read_detail(platform.objects, SERVICE, bad.id)
    assert detail is not None
    assert detail["message"] == f"failing on purpose: {reason}"


def test_the_sweeper_settles_outcomes_and_delivers_the_callback(
    platform: Platform,
    control_plane: Callable[..., AsyncRequests],
    start_ledger_worker: Callable[[], WorkerHost],
    receiver: ReceiverFactory,
) -> None:
    hook = receiver(0)
    service = control_plane()
    start_ledger_worker()
    text = unique("call-me")
    record, _ = submit(service, "echo", {"text": text}, callback_url=hook.url)
    poll(
        "the worker's outcome object",
        lambda: read_outcome(platform.objects, SERVICE, record.id),
        15,
    )
    # nobody polled: the record is settled by the sweeper, which then calls back
    assert platform.requests.get(record.id).status == "queued"

    def delivered() -> bool:
        return platform.requests.get(record.id).callback_status is not None

    assert run_sweeper(service, delivered, timeout=15), "the callback never settled"
    settled = platform.requests.get(record.id)
    assert (settled.status, settled.attempts, settled.callback_status) == (
        "succeeded", 1, "delivered",
    )  # fmt: skip
    [(signature, body)] = hook.received()
    verify_signature(SECRET, signature, body)
    doc = json.loads(body)
    assert (doc["id"], doc["status"], doc["attempts"]) == (record.id, "succeeded", 1)
    assert doc["result"] == {"text": text, "length": len(text)}


def test_a_request_whose_worker_vanishes_is_dead_lettered_with_its_attempts(
    platform: Platform, control_plane: Callable[..., AsyncRequests]
) -> None:
    service = control_plane()
    record, _ = submit(service, "echo", {"text": unique("orphan")})
    jobs = ledger_jobs(platform)  # receives, then never finishes nor heartbeats
    for attempt in range(1, MAX_RECEIVES + 1):
        [job] = poll(f"delivery {attempt}", lambda: jobs.receive(1, 0) or None, 10)
        assert job.attempt == attempt

    def dead_lettered() -> bool | None:
        assert jobs.receive(1, 0) == []
        return platform.queue().depth().total == 0 or None

    poll("the message to be dead-lettered", dead_lettered, 10)
    service.sweep_once()
    failed = platform.requests.get(record.id)
    assert (failed.status, failed.attempts, failed.version) == ("failed", MAX_RECEIVES, VERSION)
    error = service.describe(failed)["error"]
    assert error["code"] == "dead_lettered"
    assert f"delivered {MAX_RECEIVES} times" in error["message"]


def test_expiry_deletes_the_ledger_objects(
    platform: Platform, control_plane: Callable[..., AsyncRequests]
) -> None:
    service = control_plane(result_ttl=0.5)
    record, _ = submit(service, "echo", {"text": unique("brief")})
    jobs = ledger_jobs(platform, result_ttl=0.5)
    [job] = poll("the delivery", lambda: jobs.receive(1, 0) or None, 10)
    assert jobs.succeed(job, b'{"text": "brief", "length": 5}')
    assert service.get(record.id).status == "succeeded"
    assert progress_key(SERVICE, record.id) in platform.keys(request_prefix(record.id))

    def swept() -> bool | None:
        service.sweep_once()
        return service.get(record.id).status == "expired" or None

    poll("the sweeper to expire the request", swept, 10)
    assert platform.keys(request_prefix(record.id)) == []
