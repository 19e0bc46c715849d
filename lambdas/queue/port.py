"""The Queue port: at-least-once delivery with visibility timeouts and dead letters.

Modelled on SQS standard queues, so the local queue and SQS behave the same:

- ``send`` enqueues a body (at most ``MAX_BODY_BYTES``; bigger payloads go to the
  ObjectStore and the message carries their key), optionally delayed.
- ``receive`` hands out visible messages and hides each for ``visibility_timeout``
  seconds. Every delivery has its own ``receipt``; a message that is not deleted in
  time becomes visible again and is delivered anew, with ``receive_count`` + 1 and a
  new receipt. Delivery is at least once: consumers must be idempotent.
- ``extend`` is the worker's heartbeat (SQS ChangeMessageVisibility): the message stays
  hidden for ``visibility_timeout`` more seconds from now. One delivery is hidden for at
  most ``MAX_VISIBILITY`` (12 hours, the SQS ceiling) counted from its receive; past
  that, ``extend`` raises ``VisibilityLimitExceeded``. ``extend(receipt, 0)`` hands the
  message back at once.
- ``delete`` acknowledges a delivery. A receipt that is no longer the message's current
  delivery (its visibility ran out and someone else received it) raises ``StaleReceipt``,
  so a worker that stalled and came back cannot delete or extend someone else's delivery;
  so does a receipt whose message is already deleted or dead-lettered. On SQS this holds
  only as far as SQS reports it (an old handle on DeleteMessage "succeeds" there): see
  ``flowhost.lambdas.queue.sqs``.
- A message received ``max_receive_count`` times and still not deleted is moved to the
  dead-letter queue by the next receive that finds it visible, instead of being delivered
  again; ``dead_letters`` lists them (a peek: they stay there) and
  ``remove_dead_letter`` removes one once it has been dealt with.

Limits are the SQS ones and are checked the same way on every backend
(``InvalidQueueArgument``), so code that runs locally runs on AWS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from flowhost.errors import FlowhostError

__all__ = [
    "DEDUP_WINDOW",
    "MAX_BATCH",
    "MAX_BODY_BYTES",
    "MAX_DEAD_LETTERS",
    "MAX_DELAY",
    "MAX_NAME",
    "MAX_RECEIVE_COUNT",
    "MAX_VISIBILITY",
    "MAX_WAIT",
    "Depth",
    "InvalidQueueArgument",
    "Message",
    "Queue",
    "QueueError",
    "StaleReceipt",
    "VisibilityLimitExceeded",
]

MAX_VISIBILITY = 12 * 60 * 60.0  # seconds one delivery may stay hidden (SQS: 43,200)
MAX_DELAY = 15 * 60.0  # SQS DelaySeconds ceiling
MAX_WAIT = 20.0  # SQS WaitTimeSeconds ceiling (long polling)
MAX_BATCH = 10  # SQS MaxNumberOfMessages ceiling
MAX_RECEIVE_COUNT = 1000  # SQS maxReceiveCount ceiling
# Small enough that a binary body still fits SQS's 256 KiB after base64 (4/3) and
# attributes; larger payloads belong in the ObjectStore.
MAX_BODY_BYTES = 128 * 1024
MAX_DEAD_LETTERS = 100  # most dead letters one ``dead_letters`` call returns
DEDUP_WINDOW = 5 * 60.0  # seconds a dedup_key is remembered (as SQS FIFO)
MAX_DEDUP_KEY = 128  # characters (as SQS MessageDeduplicationId)

MAX_NAME = 76  # characters: SQS allows 80, and the dead-letter queue adds "-dlq"
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class QueueError(FlowhostError):
    """A queue operation failed; the message names the queue and the operation."""

    code = "queue_error"
    status = 500


class InvalidQueueArgument(QueueError, ValueError):
    """An argument is outside the limits every backend enforces (the SQS ones)."""

    code = "invalid_queue_argument"
    status = 400


class StaleReceipt(QueueError):
    """The receipt is not (or no longer) the message's current delivery."""

    code = "stale_receipt"
    status = 409


class VisibilityLimitExceeded(QueueError):
    """``extend`` would hide one delivery for longer than ``MAX_VISIBILITY`` in total."""

    code = "visibility_limit_exceeded"
    status = 409


@dataclass(frozen=True, slots=True)
class Message:
    """One delivery of a message. ``receipt`` is valid for this delivery only."""

    id: str
    receipt: str  # for dead letters: only good for remove_dead_letter
    body: bytes
    receive_count: int  # deliveries so far, this one included
    sent_at: datetime  # UTC

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass(frozen=True, slots=True)
class Depth:
    """How many messages a queue holds, by state (dead letters not included).

    ``oldest_age_seconds`` is the age of the oldest message still in the queue (0.0
    when empty), or None where the backend cannot tell: SQS exposes it only as the
    CloudWatch metric ``ApproximateAgeOfOldestMessage``, not as a queue attribute.
    On SQS the counts are SQS's approximate ones.
    """

    visible: int
    in_flight: int
    delayed: int
    oldest_age_seconds: float | None

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed


class Queue(Protocol):
    """One named queue and its dead-letter queue."""

    @property
    def name(self) -> str: ...

    @property
    def max_receive_count(self) -> int:
        """Deliveries before a message goes to the dead-letter queue."""
        ...

    @property
    def deduplicates(self) -> bool:
        """Whether ``send`` honours ``dedup_key``. SQS standard queues do not: the
        async-request store above the queue is the authority on idempotency."""
        ...

    def send(self, body: bytes | str, *, dedup_key: str | None = None, delay: float = 0) -> str:
        """Enqueue ``body`` (str is sent as UTF-8); returns the message id. With
        ``dedup_key`` (where ``deduplicates``), a second send with the same key within
        ``DEDUP_WINDOW`` enqueues nothing and returns the first message's id."""
        ...

    def receive(
        self, max_messages: int = 1, *, visibility_timeout: float, wait: float = 0
    ) -> list[Message]:
        """Up to ``max_messages`` visible messages, each hidden for ``visibility_timeout``
        seconds; waits up to ``wait`` seconds for one to arrive when none is visible."""
        ...

    def extend(self, receipt: str, visibility_timeout: float) -> None:
        """Keep the delivery hidden for ``visibility_timeout`` seconds from now."""
        ...

    def delete(self, receipt: str) -> None:
        """Acknowledge the delivery: the message is gone for good."""
        ...

    def depth(self) -> Depth: ...

    def dead_letters(self, limit: int = 10) -> list[Message]:
        """Up to ``limit`` messages of the dead-letter queue, oldest first, left in place."""
        ...

    def remove_dead_letter(self, receipt: str) -> None:
        """Remove a dead letter listed by ``dead_letters`` (by its ``receipt``) once it has
        been dealt with; a letter already gone is no error."""
        ...

    def close(self) -> None: ...


# Argument checks shared by the backends, so both reject the same calls the same way.


def check_name(name: str) -> str:
    if not _QUEUE_NAME.match(name) or len(name) > MAX_NAME:
        raise InvalidQueueArgument(
            f"queue name {name!r}: must be 1 to {MAX_NAME} letters, digits, '-' or '_'. "
            "Pick a name like 'sentiment-v1'."
        )
    return name


def _check_range(queue: str, field: str, value: float, top: float, fix: str) -> None:
    if not 0 <= value <= top:  # also false for NaN
        raise InvalidQueueArgument(
            f"queue {queue!r}: {field} must be between 0 and {top:g} (got {value!r}). {fix}."
        )


def check_visibility(queue: str, visibility_timeout: float) -> None:
    _check_range(
        queue,
        "visibility_timeout",
        visibility_timeout,
        MAX_VISIBILITY,
        "SQS hides one delivery for at most 12 hours; heartbeat with extend() for long jobs",
    )


def check_receive(queue: str, max_messages: int, visibility_timeout: float, wait: float) -> None:
    if not 1 <= max_messages <= MAX_BATCH:
        raise InvalidQueueArgument(
            f"queue {queue!r}: max_messages must be between 1 and {MAX_BATCH} "
            f"(got {max_messages!r}). Receive in batches of at most {MAX_BATCH}."
        )
    check_visibility(queue, visibility_timeout)
    _check_range(queue, "wait", wait, MAX_WAIT, "Long polls last at most 20 seconds; poll again")


def check_send(queue: str, body: bytes | str, dedup_key: str | None, delay: float) -> bytes:
    """The body as bytes, once the arguments are within the limits."""
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    if not data:
        raise InvalidQueueArgument(
            f"queue {queue!r}: the message body is empty. Send at least one byte (SQS "
            "rejects empty messages)."
        )
    if len(data) > MAX_BODY_BYTES:
        raise InvalidQueueArgument(
            f"queue {queue!r}: the message body is {len(data)} bytes (limit "
            f"{MAX_BODY_BYTES}). Put the payload in the ObjectStore and send its key."
        )
    if dedup_key is not None and not 1 <= len(dedup_key) <= MAX_DEDUP_KEY:
        raise InvalidQueueArgument(
            f"queue {queue!r}: dedup_key must be 1 to {MAX_DEDUP_KEY} characters "
            f"(got {len(dedup_key)}). Hash longer keys."
        )
    _check_range(queue, "delay", delay, MAX_DELAY, "Delay a message by at most 15 minutes")
    return data


def check_limit(queue: str, limit: int) -> None:
    if not 1 <= limit <= MAX_DEAD_LETTERS:
        raise InvalidQueueArgument(
            f"queue {queue!r}: limit must be between 1 and {MAX_DEAD_LETTERS} (got {limit!r})."
        )


def check_max_receive_count(queue: str, max_receive_count: int) -> None:
    if not 1 <= max_receive_count <= MAX_RECEIVE_COUNT:
        raise InvalidQueueArgument(
            f"queue {queue!r}: max_receive_count must be between 1 and {MAX_RECEIVE_COUNT} "
            f"(got {max_receive_count!r}). It is how many deliveries a message gets before "
            "it goes to the dead-letter queue."
        )
