"""The Queue port's contract, run against ``LocalQueue`` and ``SQSQueue`` (moto) alike."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from flowhost.errors import FlowhostError
from flowhost.lambdas.queue import (
    MAX_BODY_BYTES,
    MAX_VISIBILITY,
    InvalidQueueArgument,
    Queue,
    StaleReceipt,
    VisibilityLimitExceeded,
)
from tests.integration.queue.support import EPOCH, MAX_RECEIVES, Backend

Advance = Callable[[float], None]
VT = 1.0  # a visibility timeout short enough to wait out on SQS
PAST_VT = VT + 0.2  # moto makes a message visible once the whole second has passed


def receive_one(queue: Queue, visibility_timeout: float = VT) -> tuple[str, str, int, bytes]:
    (message,) = queue.receive(visibility_timeout=visibility_timeout)
    return message.id, message.receipt, message.receive_count, message.body


def test_send_receive_delete(queue: Queue, backend: Backend) -> None:
    before = datetime.now(UTC)
    sent = queue.send("hello")
    (message,) = queue.receive(visibility_timeout=30)
    assert (message.id, message.body, message.text, message.receive_count) == (
        sent, b"hello", "hello", 1,
    )  # fmt: skip
    assert message.receipt
    assert message.sent_at.tzinfo is not None
    assert queue.receive(visibility_timeout=30) == []  # in flight: nobody else gets it
    queue.delete(message.receipt)
    assert queue.depth().total == 0
    assert queue.receive(visibility_timeout=30) == []
    if backend.kind == "local":  # time comes from the injected clock
        assert message.sent_at == datetime.fromtimestamp(EPOCH, UTC)
    else:
        assert abs(message.sent_at - before) < timedelta(seconds=5)


def test_bodies_round_trip_as_bytes(queue: Queue) -> None:
    text = "héllo ✓ \U0001f600"
    sent = {
        queue.send(b"\x00\xff\xfe binary"): b"\x00\xff\xfe binary",
        queue.send(text): text.encode(),  # str goes as UTF-8
        queue.send(b'{"a": [1, 2]}\r\n'): b'{"a": [1, 2]}\r\n',
    }
    received = queue.receive(10, visibility_timeout=30)
    assert {m.id: m.body for m in received} == sent


def test_a_received_message_is_hidden_until_its_visibility_times_out(
    queue: Queue, advance: Advance
) -> None:
    sent = queue.send("job")
    first_id, first_receipt, first_count, _ = receive_one(queue)
    assert (first_id, first_count) == (sent, 1)
    assert queue.receive(visibility_timeout=VT) == []
    depth = queue.depth()
    assert (depth.visible, depth.in_flight, depth.delayed) == (0, 1, 0)
    advance(PAST_VT)
    again_id, again_receipt, again_count, body = receive_one(queue, visibility_timeout=30)
    assert (again_id, again_count, body) == (sent, 2, b"job")
    assert again_receipt != first_receipt
    queue.delete(again_receipt)
    assert queue.depth().total == 0


def test_extend_keeps_a_message_hidden(queue: Queue, advance: Advance) -> None:
    queue.send("long job")
    _, receipt, _, _ = receive_one(queue)
    queue.extend(receipt, 3)  # heartbeat: 3 s more from now
    advance(PAST_VT + 0.5)  # past the first timeout, within the extension
    assert queue.receive(visibility_timeout=VT) == []
    assert queue.depth().in_flight == 1
    queue.extend(receipt, 0)  # hand it back at once
    advance(0.2)
    _, _, count, _ = receive_one(queue)
    assert count == 2


def test_one_delivery_is_hidden_for_at_most_12_hours(queue: Queue, advance: Advance) -> None:
    queue.send("very long job")
    _, receipt, _, _ = receive_one(queue, visibility_timeout=30)
    with pytest.raises(InvalidQueueArgument, match=r"visibility_timeout must be between 0 and"):
        queue.extend(receipt, MAX_VISIBILITY + 1)
    advance(1.1)
    with pytest.raises(VisibilityLimitExceeded, match="12 hours") as raised:
        queue.extend(receipt, MAX_VISIBILITY)  # 12 h from now is past 12 h from the receive
    assert raised.value.status == 409
    queue.extend(receipt, MAX_VISIBILITY - 60)  # within the ceiling
    assert queue.depth().in_flight == 1
    queue.delete(receipt)


def test_a_stale_receipt_cannot_delete_or_extend_the_new_delivery(
    queue: Queue, advance: Advance, backend: Backend, request: pytest.FixtureRequest
) -> None:
    if backend.kind == "sqs":
        request.applymarker(
            pytest.mark.xfail(
                reason="moto accepts every receipt handle a message ever had (real SQS "
                "rejects expired ones on ChangeMessageVisibility)",
                raises=pytest.fail.Exception,
                strict=True,
            )
        )
    queue.send("job")
    _, stale, _, _ = receive_one(queue)
    advance(PAST_VT)  # the first worker stalls past its visibility timeout
    _, current, count, _ = receive_one(queue, visibility_timeout=30)
    assert count == 2
    with pytest.raises(StaleReceipt, match="stale"):
        queue.extend(stale, 60)
    with pytest.raises(StaleReceipt, match="stale") as raised:
        queue.delete(stale)
    assert isinstance(raised.value, FlowhostError)
    assert raised.value.code == "stale_receipt"
    assert queue.depth().in_flight == 1  # the new delivery is untouched
    queue.extend(current, 60)
    queue.delete(current)
    with pytest.raises(StaleReceipt):
        queue.delete(current)  # gone: no delivery to acknowledge


def test_a_made_up_receipt_is_rejected(queue: Queue) -> None:
    queue.send("job")
    with pytest.raises(StaleReceipt, match="receipt"):
        queue.delete("not-a-receipt")
    with pytest.raises(StaleReceipt, match="receipt"):
        queue.extend("not-a-receipt", 10)


def test_a_poison_message_ends_in_the_dead_letter_queue(queue: Queue, advance: Advance) -> None:
    poison = queue.send("poison")
    for attempt in range(1, MAX_RECEIVES + 1):
        message_id, _, count, _ = receive_one(queue)
        assert (message_id, count) == (poison, attempt)
        advance(PAST_VT)  # the worker fails: the message times out
    healthy = queue.send("healthy")
    received = queue.receive(10, visibility_timeout=30)  # moves the poison message out
    assert [m.id for m in received] == [healthy]
    queue.delete(received[0].receipt)
    assert queue.receive(visibility_timeout=30) == []  # never delivered again
    assert queue.depth().total == 0
    for _ in range(2):  # listing leaves them in place
        (dead,) = queue.dead_letters()
        assert (dead.id, dead.body) == (poison, b"poison")
        assert dead.receive_count >= MAX_RECEIVES
    assert queue.receive(visibility_timeout=30) == []
    (dead,) = queue.dead_letters()
    queue.remove_dead_letter(dead.receipt)  # dealt with: gone for good
    assert queue.dead_letters() == []
    queue.remove_dead_letter(dead.receipt)  # removing it again is no error


def test_depth_counts_visible_in_flight_and_delayed(
    queue: Queue, advance: Advance, backend: Backend
) -> None:
    assert queue.depth().total == 0
    queue.send("a")
    queue.send("b")
    queue.send("later", delay=1)
    receive_one(queue, visibility_timeout=30)
    depth = queue.depth()
    assert (depth.visible, depth.in_flight, depth.delayed, depth.total) == (1, 1, 1, 3)
    advance(1.2)
    depth = queue.depth()
    assert (depth.visible, depth.in_flight, depth.delayed) == (2, 1, 0)
    if backend.kind == "local":
        assert depth.oldest_age_seconds == pytest.approx(1.2)
    else:  # SQS has no queue attribute for it, only a CloudWatch metric
        assert depth.oldest_age_seconds is None


def test_a_delayed_message_is_delivered_after_its_delay(queue: Queue, advance: Advance) -> None:
    sent = queue.send("later", delay=1)
    assert queue.receive(visibility_timeout=30) == []
    advance(1.2)
    (message,) = queue.receive(visibility_timeout=30)
    assert message.id == sent


def test_dedup_key(queue: Queue) -> None:
    first = queue.send("submit", dedup_key="request-1")
    second = queue.send("submit", dedup_key="request-1")
    other = queue.send("submit", dedup_key="request-2")
    if queue.deduplicates:
        assert first == second != other
        assert queue.depth().visible == 2
    else:  # SQS standard queues: the async-request store deduplicates, not the queue
        assert len({first, second, other}) == 3
        assert queue.depth().visible == 3


def test_a_long_poll_returns_as_soon_as_a_message_arrives(queue: Queue) -> None:
    sender = threading.Timer(0.3, queue.send, args=("arrived",))
    start = time.monotonic()
    sender.start()
    try:
        (message,) = queue.receive(visibility_timeout=30, wait=5)
    finally:
        sender.join()
    assert message.body == b"arrived"
    assert time.monotonic() - start < 4


def test_a_long_poll_on_an_empty_queue_waits_then_returns_nothing(queue: Queue) -> None:
    start = time.monotonic()
    assert queue.receive(visibility_timeout=30, wait=1) == []
    assert time.monotonic() - start >= 0.9


def test_receive_returns_at_most_max_messages(queue: Queue) -> None:
    sent = {queue.send(f"m{i}") for i in range(5)}
    first = queue.receive(3, visibility_timeout=30)
    rest = queue.receive(10, visibility_timeout=30)
    assert len(first) == 3
    assert {m.id for m in first} | {m.id for m in rest} == sent
    assert not {m.id for m in first} & {m.id for m in rest}


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda q: q.receive(0, visibility_timeout=1), r"max_messages must be between 1 and 10"),
        (lambda q: q.receive(11, visibility_timeout=1), r"max_messages .* \(got 11\)"),
        (lambda q: q.receive(visibility_timeout=-1), r"visibility_timeout .* \(got -1\)"),
        (lambda q: q.receive(visibility_timeout=float("nan")), r"visibility_timeout .*nan"),
        (lambda q: q.receive(visibility_timeout=1, wait=21), r"wait must be between 0 and 20"),
        (lambda q: q.send("x", delay=901), r"delay must be between 0 and 900"),
        (lambda q: q.send("x", delay=-1), r"delay .* \(got -1\)"),
        (lambda q: q.send(""), r"body is empty"),
        (lambda q: q.send(b"x" * (MAX_BODY_BYTES + 1)), r"ObjectStore"),
        (lambda q: q.send("x", dedup_key=""), r"dedup_key must be 1 to 128"),
        (lambda q: q.dead_letters(0), r"limit must be between 1 and 100"),
    ],
)
def test_arguments_outside_the_limits_are_refused(
    queue: Queue, call: Callable[[Queue], object], match: str
) -> None:
    with pytest.raises(InvalidQueueArgument, match=match) as raised:
        call(queue)
    assert f"queue {queue.name!r}" in str(raised.value)
    assert raised.value.status == 400
    assert queue.depth().total == 0  # nothing was sent
