"""Asynchronous requests end to end at the port level, on the local ports and on AWS's
(SQS + S3 through moto): AsyncRequests submits and reports, a real instance's worker
(create_app + QueueJobs) runs the jobs, the sweeper expires, dead-letters and calls back.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from flowhost.callbacks import verify_signature
from flowhost.errors import NotFoundError
from flowhost.lambdas.async_requests import AsyncRequests
from flowhost.lambdas.async_requests.service import RequestExpired, RequestFailed, RequestNotReady
from flowhost.lambdas.async_requests.validation import SubmitOptions
from flowhost.lambdas.callbacks import CallbackPolicy
from flowhost.lambdas.jobs import job_message, payload_key, read_detail
from flowhost.lambdas.queue import MAX_BODY_BYTES, Message
from flowhost.lambdas.store.requests import AsyncRequest
from flowhost.services.runtime.responses import HttpError
from tests.integration.async_requests.service import SERVICE, runs
from tests.integration.async_requests.support import (
    MAX_RECEIVES,
    SECRET,
    VERSION,
    Platform,
    ReceiverFactory,
    ServiceFactory,
    WorkerFactory,
    run_sweeper,
)
from tests.integration.support import poll

pytestmark = pytest.mark.timeout(60)

OPTIONS = SubmitOptions(idempotency_key=None, callback_url=None, timeout=60.0)
MIB = 1024 * 1024


def submit(
    service: AsyncRequests, endpoint: str, body: dict[str, Any] | bytes, **options: Any
) -> tuple[AsyncRequest, bool]:
    """Submit as the async API does: resolve the target, validate, store, queue."""
    version = service.target(SERVICE, None, endpoint)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    opts = SubmitOptions(**{**OPTIONS.__dict__, **options})
    return service.submit(version, "production", endpoint, raw, opts)


def wait_status(
    service: AsyncRequests, request_id: str, *statuses: str, timeout: float = 15.0
) -> AsyncRequest:
    def check() -> AsyncRequest | None:
        record = service.get(request_id)
        return record if record.status in statuses else None

    return poll(f"request {request_id} to be {' or '.join(statuses)}", check, timeout)


def when(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


def request_prefix(request_id: str) -> str:
    return f"async/{SERVICE}/{request_id}/"


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


# -- submit, run, report --------------------------------------------------------------


def test_submitted_request_runs_on_the_worker_and_reports_its_result(
    platform: Platform, make_service: ServiceFactory, start_worker: WorkerFactory
) -> None:
    service = make_service()
    start_worker()
    text = unique("hello")
    record, created = submit(service, "echo", {"text": text, "count": 2})
    assert created
    assert record.id.startswith("req_")
    assert record.status == "queued"

    done = wait_status(service, record.id, "succeeded", "failed")
    assert done.status == "succeeded", done.error
    assert json.loads(service.result(record.id)) == {"text": text * 2, "length": len(text) * 2}
    assert runs(text) == 1

    doc = service.describe(done)
    assert doc["status"] == "succeeded"
    assert doc["version"] == f"v{VERSION}"
    assert doc["target"] == "production"
    assert doc["endpoint"] == "echo"
    assert doc["attempts"] == 1
    assert doc["error"] is None
    assert doc["callback"] is None
    created_at, started_at = when(doc["created_at"]), when(doc["started_at"])
    finished_at, expires_at = when(doc["finished_at"]), when(doc["expires_at"])
    assert created_at <= started_at <= finished_at < expires_at
    assert expires_at - finished_at == timedelta(seconds=60)
    assert doc["status_url"] == f"http://127.0.0.1:9/requests/{record.id}"
    assert doc["result_url"] == f"http://127.0.0.1:9/requests/{record.id}/result"
    # the payload and one result stay in the object store; the message is acknowledged
    keys = platform.keys(request_prefix(record.id))
    assert keys[0] == payload_key(SERVICE, record.id)
    assert len(keys) == 2, keys
    assert keys[1].startswith(request_prefix(record.id) + "result-"), keys
    assert service.get(record.id).result_key == keys[1]
    poll("the queue to be empty", lambda: platform.queue().depth().total == 0 or None, 5)


def test_invalid_and_malformed_bodies_are_refused_before_anything_is_stored(
    platform: Platform, make_service: ServiceFactory
) -> None:
    service = make_service()
    with pytest.raises(HttpError) as wrong_type:
        submit(service, "echo", {"text": "hi", "count": "three"})
    assert (wrong_type.value.status, wrong_type.value.code) == (422, "validation_error")
    assert wrong_type.value.details is not None
    assert [d["field"] for d in wrong_type.value.details] == ["count"]
    assert "count" in wrong_type.value.message

    with pytest.raises(HttpError) as missing:
        submit(service, "echo", {"count": 2})
    assert (missing.value.status, missing.value.code) == (422, "validation_error")
    assert "'text' is a required property" in missing.value.message

    with pytest.raises(HttpError) as out_of_range:
        submit(service, "echo", {"text": "hi", "count": 11})
    assert out_of_range.value.code == "validation_error"
    assert out_of_range.value.details is not None
    assert out_of_range.value.details[0]["field"] == "count"

    for body in (b'{"text": ', b"", b"not json"):
        with pytest.raises(HttpError) as malformed:
            submit(service, "echo", body)
        assert (malformed.value.status, malformed.value.code) == (400, "malformed_json")

    assert platform.queue().depth().total == 0
    assert platform.keys() == []
    assert platform.record_count() == 0


def test_no_result_before_it_exists_and_unknown_ids(
    make_service: ServiceFactory, start_worker: WorkerFactory
) -> None:
    service = make_service()
    queued, _ = submit(service, "echo", {"text": unique("early")})
    with pytest.raises(RequestNotReady) as not_ready:
        service.result(queued.id)
    assert (not_ready.value.status, not_ready.value.code) == (409, "result_not_ready")
    assert "queued" in not_ready.value.message

    start_worker()
    tag = unique("slow")
    # longer than the visibility timeout: the worker's heartbeats keep the job its own
    slow, _ = submit(service, "slow", {"tag": tag, "seconds": 1.5})
    running = wait_status(service, slow.id, "running", "succeeded", "failed")
    assert running.status == "running"
    with pytest.raises(RequestNotReady) as still_running:
        service.result(slow.id)
    assert still_running.value.code == "result_not_ready"
    assert "running" in still_running.value.message

    done = wait_status(service, slow.id, "succeeded", "failed")
    assert done.status == "succeeded", done.error
    assert done.attempts == 1
    assert runs(tag) == 1
    assert json.loads(service.result(slow.id)) == {"text": tag, "length": len(tag)}
    assert wait_status(service, queued.id, "succeeded", "failed").status == "succeeded"

    for call in (service.get, service.result):
        with pytest.raises(NotFoundError) as unknown:
            call("req_does-not-exist")
        assert (unknown.value.status, unknown.value.code) == (404, "request_not_found")
    with pytest.raises(NotFoundError):
        service.target(SERVICE, None, "no-such-endpoint")


def test_an_idempotency_key_gives_one_request_one_message_and_one_run(
    platform: Platform, make_service: ServiceFactory, start_worker: WorkerFactory
) -> None:
    service = make_service()
    text = unique("once")
    key = unique("key")
    first, created = submit(service, "echo", {"text": text}, idempotency_key=key)
    again, created_again = submit(service, "echo", {"text": text}, idempotency_key=key)
    assert created
    assert not created_again
    assert again.id == first.id
    assert platform.queue().depth().visible == 1
    assert platform.keys() == [payload_key(SERVICE, first.id)]

    start_worker()
    done = wait_status(service, first.id, "succeeded", "failed")
    assert done.status == "succeeded", done.error
    assert done.attempts == 1

    replay, created_replay = submit(service, "echo", {"text": text}, idempotency_key=key)
    assert replay.id == first.id
    assert not created_replay
    assert replay.status == "succeeded"
    poll("the queue to be empty", lambda: platform.queue().depth().total == 0 or None, 5)
    assert runs(text) == 1
    assert platform.record_count() == 1
    other, created_other = submit(service, "echo", {"text": text}, idempotency_key=unique("key"))
    assert created_other
    assert other.id != first.id
    assert wait_status(service, other.id, "succeeded", "failed").status == "succeeded"
    assert runs(text) == 2


def test_results_expire_after_their_ttl(
    platform: Platform, make_service: ServiceFactory, start_worker: WorkerFactory
) -> None:
    ttl = 0.5
    service = make_service(result_ttl=ttl)
    start_worker(result_ttl=ttl)
    record, _ = submit(service, "echo", {"text": unique("brief")})
    done = wait_status(service, record.id, "succeeded", "failed")
    assert done.status == "succeeded", done.error
    assert len(platform.keys(request_prefix(record.id))) == 2
    assert json.loads(service.result(record.id))["text"].startswith("brief-")

    def swept() -> AsyncRequest | None:
        service.sweep_once()
        found = service.get(record.id)
        return found if found.status == "expired" else None

    gone = poll("the sweeper to expire the request", swept, 10)
    assert service.describe(gone)["status"] == "expired"
    assert platform.keys(request_prefix(record.id)) == []
    with pytest.raises(RequestExpired) as exc:
        service.result(record.id)
    assert (exc.value.status, exc.value.code) == (410, "request_expired")


# -- retries, dead letters, write-once -----------------------------------------------


def test_an_endpoint_that_always_fails_is_retried_then_failed_and_dead_lettered(
    platform: Platform, make_service: ServiceFactory, start_worker: WorkerFactory
) -> None:
    service = make_service()
    start_worker()
    reason = unique("broken")
    record, _ = submit(service, "fail", {"reason": reason})
    done = wait_status(service, record.id, "failed", "succeeded")
    assert done.status == "failed"
    assert done.attempts == MAX_RECEIVES
    assert runs(reason) == MAX_RECEIVES

    doc = service.describe(done)
    assert doc["error"] is not None
    assert doc["error"]["code"] == "endpoint_error"
    # callers see the safe message: the exception's type and the request id, never its text
    assert "'fail' raised RuntimeError" in doc["error"]["message"]
    assert record.id in doc["error"]["message"]
    assert reason not in json.dumps(doc)
    assert reason not in service.callback_body(done).decode()
    # deployers find the text and the traceback beside the record
    detail = read_detail(platform.objects, SERVICE, record.id)
    assert detail is not None
    assert (detail["type"], detail["code"]) == ("RuntimeError", "endpoint_error")
    assert detail["message"] == f"failing on purpose: {reason}"
    assert "Traceback" in detail["traceback"]
    assert detail["attempt"] == MAX_RECEIVES
    with pytest.raises(RequestFailed) as failed:
        service.result(record.id)
    assert (failed.value.status, failed.value.code) == (409, "request_failed")
    assert reason not in failed.value.message

    queue = platform.queue()
    # failed on its last delivery, the message is handed back and dead-lettered at the
    # worker's next receive
    poll("the message to leave the queue", lambda: queue.depth().total == 0 or None, 10)
    letters = queue.dead_letters()
    assert [json.loads(m.body)["request_id"] for m in letters] == [record.id]
    assert letters[0].receive_count >= MAX_RECEIVES
    # the sweeper keeps the endpoint's error: the request had already failed
    service.sweep_once()
    assert service.describe(service.get(record.id))["error"] == doc["error"]


def test_a_request_whose_worker_vanishes_each_time_ends_dead_lettered(
    platform: Platform, make_service: ServiceFactory
) -> None:
    service = make_service()
    record, _ = submit(service, "echo", {"text": unique("orphan")})
    jobs = platform.jobs()  # an instance that receives and then never finishes or heartbeats

    for attempt in range(1, MAX_RECEIVES + 1):
        [job] = poll(f"delivery {attempt}", lambda: jobs.receive(1, 0) or None, 10)
        assert job.request_id == record.id
        assert job.attempt == attempt
        assert job.final == (attempt == MAX_RECEIVES)
        running = service.get(record.id)
        assert (running.status, running.attempts) == ("running", attempt)

    queue = platform.queue()

    def dead_lettered() -> bool | None:
        assert jobs.receive(1, 0) == []  # moves it to the dead-letter queue, never runs it
        return queue.depth().total == 0 or None

    poll("the message to be dead-lettered", dead_lettered, 10)
    [letter] = queue.dead_letters()
    assert json.loads(letter.body)["request_id"] == record.id
    assert service.get(record.id).status == "running"  # nothing finished it yet
    service.sweep_once()
    failed = service.get(record.id)
    assert failed.status == "failed"
    assert failed.attempts == MAX_RECEIVES
    error = service.describe(failed)["error"]
    assert error is not None
    assert error["code"] == "dead_lettered"
    delivered = re.search(r"delivered (\d+) times without finishing", error["message"])
    assert delivered is not None, error
    assert int(delivered[1]) == MAX_RECEIVES  # the record's count, not the queue's
    assert queue.dead_letters() == []  # settled, then removed
    with pytest.raises(RequestFailed):
        service.result(record.id)


def test_two_deliveries_of_one_request_keep_one_result(
    platform: Platform, make_service: ServiceFactory
) -> None:
    service = make_service()
    record, _ = submit(service, "echo", {"text": unique("twice")})
    jobs = platform.jobs()
    [first] = poll("the first delivery", lambda: jobs.receive(1, 0) or None, 10)
    # the first worker stalls past its visibility timeout: the message is delivered again
    [second] = poll("the second delivery", lambda: jobs.receive(1, 0) or None, 10)
    assert (first.request_id, second.request_id) == (record.id, record.id)
    assert (first.attempt, second.attempt) == (1, 2)

    outcomes = [
        jobs.succeed(first, b'{"text": "first", "length": 5}'),
        jobs.succeed(second, b'{"text": "second", "length": 6}'),
    ]
    assert outcomes == [True, False]
    keys = platform.keys(request_prefix(record.id))
    results = [k for k in keys if k != payload_key(SERVICE, record.id)]
    assert len(results) == 1, keys
    assert service.get(record.id).result_key == results[0]
    assert json.loads(service.result(record.id)) == {"text": "first", "length": 5}
    assert service.get(record.id).attempts == 2
    poll("the message to be acknowledged", lambda: platform.queue().depth().total == 0 or None, 5)
    assert jobs.receive(1, 0) == []


# -- large payloads and results --------------------------------------------------------


def test_large_payloads_and_results_go_through_the_object_store(
    platform: Platform, make_service: ServiceFactory, start_worker: WorkerFactory
) -> None:
    service = make_service()
    text = unique("p") + "x" * MIB
    big_in, _ = submit(service, "echo", {"text": text})
    big_out, _ = submit(service, "big", {"size": MIB + 17})
    assert len(platform.objects.get(payload_key(SERVICE, big_in.id))) > MAX_BODY_BYTES

    # the queue carries pointers only: look at the messages, then hand them back
    queue = platform.queue()
    held: list[Message] = []

    def peek() -> bool | None:
        held.extend(queue.receive(10, visibility_timeout=10))
        return True if len(held) >= 2 else None

    poll("both messages", peek, 10)
    assert len(held) == 2
    seen = {json.loads(m.body)["request_id"]: m.body for m in held}
    for message in held:  # each received once: the worker's delivery is not the last
        queue.extend(message.receipt, 0)
    for record in (big_in, big_out):
        body = seen[record.id]
        expected = job_message(
            record.id, record.endpoint, payload_key(SERVICE, record.id),
            timeout_seconds=record.timeout_seconds,
        )  # fmt: skip
        assert body == expected.encode()
        assert len(body) < 512

    start_worker()
    for record in (big_in, big_out):
        done = wait_status(service, record.id, "succeeded", "failed")
        assert done.status == "succeeded", done.error
    echoed = json.loads(service.result(big_in.id))
    assert echoed == {"text": text, "length": len(text)}
    assert json.loads(service.result(big_out.id)) == {"data": "y" * (MIB + 17)}


# -- callbacks ---------------------------------------------------------------------------


def test_a_callback_is_retried_until_delivered_signed_with_the_result(
    make_service: ServiceFactory, start_worker: WorkerFactory, receiver: ReceiverFactory
) -> None:
    hook = receiver(2)
    service = make_service()
    start_worker()
    text = unique("call-me")
    record, _ = submit(service, "echo", {"text": text}, callback_url=hook.url)
    assert service.describe(record)["callback"] == {"url": hook.url, "status": "pending"}
    assert wait_status(service, record.id, "succeeded", "failed").status == "succeeded"

    def settled() -> bool:
        return service.get(record.id).callback_status is not None

    assert run_sweeper(service, settled, timeout=15), "the callback never settled"
    assert service.describe(service.get(record.id))["callback"] == {
        "url": hook.url,
        "status": "delivered",
    }
    calls = hook.received()
    assert len(calls) == 3  # two 500s, then accepted
    for signature, body in calls:
        verify_signature(SECRET, signature, body)
    doc = json.loads(calls[-1][1])
    assert doc["id"] == record.id
    assert doc["status"] == "succeeded"
    assert doc["attempts"] == 1
    assert doc["result"] == {"text": text, "length": len(text)}
    assert doc["callback"]["url"] == hook.url


def test_a_callback_that_keeps_failing_is_given_up_after_its_attempts(
    make_service: ServiceFactory, start_worker: WorkerFactory, receiver: ReceiverFactory
) -> None:
    hook = receiver(1000)
    policy = CallbackPolicy(attempts=3, backoff=0.05, max_backoff=0.1, timeout=5.0)
    service = make_service(callback=policy)
    start_worker()
    text = unique("no-one-listens")
    record, _ = submit(service, "echo", {"text": text}, callback_url=hook.url)
    assert wait_status(service, record.id, "succeeded", "failed").status == "succeeded"

    def settled() -> bool:
        return service.get(record.id).callback_status is not None

    assert run_sweeper(service, settled, timeout=15), "the callback never settled"
    assert service.get(record.id).callback_status == "gave_up"
    calls = hook.received()
    assert len(calls) == policy.attempts
    for signature, body in calls:
        verify_signature(SECRET, signature, body)
        doc = json.loads(body)
        assert (doc["id"], doc["status"]) == (record.id, "succeeded")
        assert doc["result"] == {"text": text, "length": len(text)}


def test_a_queue_that_refuses_a_request_fails_it_without_quoting_its_error(
    platform: Platform, make_service: ServiceFactory, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    service = make_service()

    class Refusing:
        def send(self, *_: Any, **__: Any) -> None:
            raise RuntimeError("queue auth failed: token=sk-secret-42")

    monkeypatch.setattr(service.queues, "queue", lambda *_: Refusing())
    key = unique("refused")
    with pytest.raises(RuntimeError):
        submit(service, "echo", {"text": "hi"}, idempotency_key=key)
    record = service.requests.find(SERVICE, key)
    assert record is not None
    assert record.status == "failed"
    assert record.error is not None
    assert "enqueue_failed" in record.error
    assert "sk-secret-42" not in record.error  # invokers read the record's error
    assert "sk-secret-42" in caplog.text  # the platform's log keeps it
