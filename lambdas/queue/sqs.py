"""``SQSQueue``: the Queue port on an SQS standard queue and its dead-letter queue.

Message ids and receipts are SQS's own. Where SQS cannot match the local queue:

- ``dedup_key`` is accepted and ignored (``deduplicates`` is False): standard queues do
  not deduplicate, and FIFO queues, which do, allow no per-message delay and hold a
  whole message group behind a failing message. Idempotency of async requests belongs
  to the request store above the queue (one request id per Idempotency-Key).
- Stale receipts: SQS rejects an expired handle on ChangeMessageVisibility, which
  ``extend`` raises as ``StaleReceipt``; but DeleteMessage with an old handle "succeeds,
  but the message might not be deleted" (SQS API reference), so ``delete`` cannot tell.
  Delivery is at least once either way: results must be written idempotently.
- ``depth().oldest_age_seconds`` is None: the age of the oldest message is only the
  CloudWatch metric ``ApproximateAgeOfOldestMessage``, not a queue attribute.
- Visibility timeouts, delays and waits are whole seconds on SQS: they are rounded up.
- ``dead_letters`` peeks: it receives from the dead-letter queue with a short visibility
  timeout, then hands each message back at once; SQS counts each peek as a receive.
- Bodies are text on SQS. A body that is not UTF-8 in SQS's character set is sent as
  base64 with the message attribute ``flowhost-encoding=base64``.

The boto3 client belongs to the caller, who closes it; ``close`` here does nothing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import re
from collections.abc import Generator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Self

from botocore.exceptions import BotoCoreError, ClientError

from flowhost.lambdas.queue.port import (
    MAX_BATCH,
    Depth,
    Message,
    QueueError,
    StaleReceipt,
    VisibilityLimitExceeded,
    check_limit,
    check_max_receive_count,
    check_name,
    check_receive,
    check_send,
    check_visibility,
)

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.literals import MessageSystemAttributeNameType, QueueAttributeNameType
    from types_boto3_sqs.type_defs import MessageTypeDef

__all__ = ["DEAD_LETTER_SUFFIX", "SQSQueue"]

DEAD_LETTER_SUFFIX = "-dlq"
DEAD_LETTER_RETENTION = 14 * 24 * 60 * 60  # seconds: the SQS maximum, longer than any source
PEEK_VISIBILITY = 30  # seconds dead letters stay hidden while dead_letters() lists them
_ENCODING = "flowhost-encoding"
_SYSTEM_ATTRIBUTES: list[MessageSystemAttributeNameType] = [
    "ApproximateReceiveCount",
    "SentTimestamp",
]
_COUNTS: list[QueueAttributeNameType] = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]
# Characters SQS accepts in a message body; anything else goes base64.
_NOT_SQS_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_STALE_CODES = frozenset({"ReceiptHandleIsInvalid", "MessageNotInflight"})
_MISSING_CODES = frozenset({"QueueDoesNotExist", "NonExistentQueue"})


@contextmanager
def _sqs_errors(queue: str, operation: str) -> Generator[None]:
    """Turns SQS's errors inside the block into QueueErrors naming ``queue``."""
    try:
        yield
    except ClientError as error:
        details = error.response.get("Error", {})
        code = details.get("Code", "Unknown").rsplit(".", 1)[-1]
        text = details.get("Message", "")[:300]
        where = f"queue {queue!r}: SQS {operation}"
        if code in _STALE_CODES or "receipt handle has expired" in text:
            raise StaleReceipt(
                f"{where} rejected the receipt ({code}): it is not the message's current "
                "delivery. Receive the message again; only its latest receipt works."
            ) from error
        if code == "InvalidParameterValue" and "VisibilityTimeout" in text and "limit" in text:
            raise VisibilityLimitExceeded(
                f"{where}: {text} Finish or hand the message back within 12 hours of receiving it."
            ) from error
        if code in _MISSING_CODES:
            raise QueueError(
                f"{where}: the queue does not exist ({code}). Create it with "
                "SQSQueue.create, or check the queue URL and region."
            ) from error
        raise QueueError(
            f"{where} failed ({code}: {text}). Check the queue URL, region and the role's "
            "SQS permissions."
        ) from error
    except BotoCoreError as error:
        raise QueueError(
            f"queue {queue!r}: SQS {operation} failed: {error}. Check the endpoint, "
            "network and credentials."
        ) from error


def _message(raw: MessageTypeDef) -> Message:
    attributes = raw.get("Attributes", {})
    encoding = raw.get("MessageAttributes", {}).get(_ENCODING)
    is_base64 = encoding is not None and encoding.get("StringValue") == "base64"
    body = raw.get("Body", "")
    return Message(
        id=raw.get("MessageId", ""),
        receipt=raw.get("ReceiptHandle", ""),
        body=base64.b64decode(body) if is_base64 else body.encode("utf-8"),
        receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
        sent_at=datetime.fromtimestamp(int(attributes.get("SentTimestamp", 0)) / 1000, UTC),
    )


class SQSQueue:
    """The SQS queue at ``url``, whose RedrivePolicy sends messages to ``dead_letter_url``
    after ``max_receive_count`` receives. :meth:`create` makes both queues."""

    deduplicates = False

    def __init__(
        self, client: SQSClient, url: str, dead_letter_url: str, *, max_receive_count: int
    ) -> None:
        self._client = client
        self.url = url
        self.dead_letter_url = dead_letter_url
        self.name = url.rstrip("/").rsplit("/", 1)[-1]
        check_max_receive_count(self.name, max_receive_count)
        self.max_receive_count = max_receive_count

    @classmethod
    def create(cls, client: SQSClient, name: str, *, max_receive_count: int = 5) -> Self:
        """Create (or update) queue ``name`` and its dead-letter queue ``name-dlq``.

        Idempotent: existing queues keep their messages and get the RedrivePolicy.
        """
        check_name(name)
        check_max_receive_count(name, max_receive_count)
        dead = f"{name}{DEAD_LETTER_SUFFIX}"
        with _sqs_errors(dead, "CreateQueue"):
            dead_url = client.create_queue(QueueName=dead)["QueueUrl"]
            client.set_queue_attributes(
                QueueUrl=dead_url,
                Attributes={"MessageRetentionPeriod": str(DEAD_LETTER_RETENTION)},
            )
            found = client.get_queue_attributes(QueueUrl=dead_url, AttributeNames=["QueueArn"])
        policy = {"deadLetterTargetArn": found["Attributes"]["QueueArn"],
                  "maxReceiveCount": max_receive_count}  # fmt: skip
        with _sqs_errors(name, "CreateQueue"):
            url = client.create_queue(QueueName=name)["QueueUrl"]
            client.set_queue_attributes(
                QueueUrl=url, Attributes={"RedrivePolicy": json.dumps(policy)}
            )
        return cls(client, url, dead_url, max_receive_count=max_receive_count)

    def send(self, body: bytes | str, *, dedup_key: str | None = None, delay: float = 0) -> str:
        data = check_send(self.name, body, dedup_key, delay)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        with _sqs_errors(self.name, "SendMessage"):
            if text is not None and not _NOT_SQS_TEXT.search(text):
                response = self._client.send_message(
                    QueueUrl=self.url, MessageBody=text, DelaySeconds=math.ceil(delay)
                )
            else:
                response = self._client.send_message(
                    QueueUrl=self.url,
                    MessageBody=base64.b64encode(data).decode("ascii"),
                    DelaySeconds=math.ceil(delay),
                    MessageAttributes={_ENCODING: {"DataType": "String", "StringValue": "base64"}},
                )
        return response["MessageId"]

    def _receive(self, url: str, count: int, visibility: int, wait: int) -> list[Message]:
        with _sqs_errors(self.name, "ReceiveMessage"):
            response = self._client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=count,
                VisibilityTimeout=visibility,
                WaitTimeSeconds=wait,
                MessageSystemAttributeNames=_SYSTEM_ATTRIBUTES,
                MessageAttributeNames=[_ENCODING],
            )
        return [_message(raw) for raw in response.get("Messages", [])]

    def receive(
        self, max_messages: int = 1, *, visibility_timeout: float, wait: float = 0
    ) -> list[Message]:
        check_receive(self.name, max_messages, visibility_timeout, wait)
        return self._receive(self.url, max_messages, math.ceil(visibility_timeout), math.ceil(wait))

    def _change_visibility(self, url: str, receipt: str, seconds: int) -> None:
        with _sqs_errors(self.name, "ChangeMessageVisibility"):
            self._client.change_message_visibility(
                QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=seconds
            )

    def extend(self, receipt: str, visibility_timeout: float) -> None:
        check_visibility(self.name, visibility_timeout)
        self._change_visibility(self.url, receipt, math.ceil(visibility_timeout))

    def delete(self, receipt: str) -> None:
        with _sqs_errors(self.name, "DeleteMessage"):
            self._client.delete_message(QueueUrl=self.url, ReceiptHandle=receipt)

    def depth(self) -> Depth:
        with _sqs_errors(self.name, "GetQueueAttributes"):
            found = self._client.get_queue_attributes(QueueUrl=self.url, AttributeNames=_COUNTS)
        visible, in_flight, delayed = (int(found["Attributes"].get(a, 0)) for a in _COUNTS)
        return Depth(visible, in_flight, delayed, None)

    def dead_letters(self, limit: int = 10) -> list[Message]:
        check_limit(self.name, limit)
        found: dict[str, Message] = {}
        receipts: list[str] = []
        try:
            while len(found) < limit:
                # A 1 s long poll asks every SQS server; a short poll samples a few.
                count = min(MAX_BATCH, limit - len(found))
                batch = self._receive(self.dead_letter_url, count, PEEK_VISIBILITY, 1)
                if not batch:
                    break
                for message in batch:
                    receipts.append(message.receipt)
                    found.setdefault(message.id, message)
        finally:
            for receipt in receipts:  # hand them back: listing must not hide them
                with contextlib.suppress(StaleReceipt):  # deleted or redriven meanwhile
                    self._change_visibility(self.dead_letter_url, receipt, 0)
        # The peek's receipt stays the letter's latest (its visibility was only reset), so
        # remove_dead_letter can delete with it.
        return sorted(found.values(), key=lambda m: m.sent_at)

    def remove_dead_letter(self, receipt: str) -> None:
        with contextlib.suppress(StaleReceipt), _sqs_errors(self.name, "DeleteMessage"):
            self._client.delete_message(QueueUrl=self.dead_letter_url, ReceiptHandle=receipt)

    def close(self) -> None:
        """Nothing to release: the boto3 client belongs to the caller."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQSQueue({self.name!r})"
