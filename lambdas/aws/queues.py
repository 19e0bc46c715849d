"""Per-version SQS queues on AWS: ``<prefix><service>-v<N>`` and ``...-dlq``.

``SQSQueues`` is the AWS ``QueueProvider`` (see ``flowhost.lambdas.async_requests.queues``):
``queue(service, number)`` creates the version's queue and its dead-letter queue with the
RedrivePolicy (``SQSQueue.create``, idempotent), encrypts both with the platform's KMS key
when one is given, and keeps the ``SQSQueue`` for the life of the process. With
``create=False`` it only looks the pair up (for roles without ``sqs:CreateQueue``) and
reads ``maxReceiveCount`` from the queue's own RedrivePolicy.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from botocore.exceptions import ClientError

from flowhost.lambdas.async_requests.queues import queue_name
from flowhost.lambdas.aws.errors import aws_errors, error_code
from flowhost.lambdas.queue.port import QueueError, check_max_receive_count, check_name
from flowhost.lambdas.queue.sqs import DEAD_LETTER_SUFFIX, SQSQueue

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.literals import QueueAttributeNameType

__all__ = ["DEFAULT_KMS_REUSE_SECONDS", "SQSQueues"]

DEFAULT_KMS_REUSE_SECONDS = 300  # SQS's own default data key reuse period
_MISSING = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
T = TypeVar("T")


class SQSQueues:
    """The AWS ``QueueProvider``. The boto3 client belongs to the caller."""

    def __init__(
        self,
        client: SQSClient,
        *,
        prefix: str = "",
        max_receive_count: int = 3,
        kms_key_id: str | None = None,
        kms_reuse_seconds: int = DEFAULT_KMS_REUSE_SECONDS,
        create: bool = True,
    ) -> None:
        check_max_receive_count(f"{prefix}*", max_receive_count)
        if not 60 <= kms_reuse_seconds <= 86400:
            raise ValueError(
                f"SQSQueues: kms_reuse_seconds must be between 60 and 86400 (got "
                f"{kms_reuse_seconds}). It is KmsDataKeyReusePeriodSeconds."
            )
        self.client = client
        self.prefix = prefix
        self.max_receive_count = max_receive_count
        self.kms_key_id = kms_key_id
        self.kms_reuse_seconds = kms_reuse_seconds
        self.create = create
        self._queues: dict[str, SQSQueue] = {}
        self._lock = threading.Lock()

    def name(self, service: str, number: int) -> str:
        return check_name(self.prefix + queue_name(service, number))

    def queue(self, service: str, number: int) -> SQSQueue:
        name = self.name(service, number)
        with self._lock:
            queue = self._queues.get(name)
            if queue is None:
                queue = self._queues[name] = self._make(name) if self.create else self._find(name)
            return queue

    def _make(self, name: str) -> SQSQueue:
        queue = SQSQueue.create(self.client, name, max_receive_count=self.max_receive_count)
        if self.kms_key_id is not None:
            encryption: dict[QueueAttributeNameType, str] = {
                "KmsMasterKeyId": self.kms_key_id,
                "KmsDataKeyReusePeriodSeconds": str(self.kms_reuse_seconds),
            }
            for url in (queue.dead_letter_url, queue.url):
                with aws_errors(f"SQS queue {name!r}", "SetQueueAttributes"):
                    self.client.set_queue_attributes(QueueUrl=url, Attributes=encryption)
        return queue

    def _find(self, name: str) -> SQSQueue:
        url = self._call(name, "GetQueueUrl", lambda: self.client.get_queue_url(QueueName=name))
        dead = self._call(
            name,
            "GetQueueUrl",
            lambda: self.client.get_queue_url(QueueName=name + DEAD_LETTER_SUFFIX),
        )
        found = self._call(
            name,
            "GetQueueAttributes",
            lambda: self.client.get_queue_attributes(
                QueueUrl=url["QueueUrl"], AttributeNames=["RedrivePolicy"]
            ),
        )
        raw = found.get("Attributes", {}).get("RedrivePolicy")
        if raw is None:
            raise QueueError(
                f"queue {name!r}: it has no RedrivePolicy (got none). Create it with its "
                "dead-letter queue (SQSQueues with create=True, or the platform stack)."
            )
        policy = json.loads(raw)
        return SQSQueue(
            self.client,
            url["QueueUrl"],
            dead["QueueUrl"],
            max_receive_count=int(policy["maxReceiveCount"]),
        )

    def _call(self, name: str, operation: str, call: Callable[[], T]) -> T:
        with aws_errors(
            f"SQS queue {name!r}",
            operation,
            missing=_MISSING,
            missing_fix="Deploy the version again (its queues are made at deploy), or check "
            "the queue prefix and region",
        ):
            return call()

    def remove(self, service: str, number: int) -> None:
        """Delete the version's queue and dead-letter queue (after undeploy); queues
        already gone are no error."""
        name = self.name(service, number)
        with self._lock:
            self._queues.pop(name, None)
        for queue in (name, name + DEAD_LETTER_SUFFIX):
            try:
                url = self.client.get_queue_url(QueueName=queue)["QueueUrl"]
                self.client.delete_queue(QueueUrl=url)
            except ClientError as error:
                if error_code(error) in _MISSING:
                    continue
                with aws_errors(f"SQS queue {queue!r}", "DeleteQueue"):
                    raise

    def close(self) -> None:
        """Forget the queues; the boto3 client belongs to the caller."""
        with self._lock:
            self._queues.clear()
