"""The Queue port: ``LocalQueue`` (SQLite, the local default) and ``SQSQueue`` (AWS).

``SQSQueue`` is imported on first use, so the local platform never loads botocore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowhost.lambdas.queue.local import LocalQueue
from flowhost.lambdas.queue.port import (
    DEDUP_WINDOW,
    MAX_BATCH,
    MAX_BODY_BYTES,
    MAX_DEAD_LETTERS,
    MAX_DELAY,
    MAX_NAME,
    MAX_RECEIVE_COUNT,
    MAX_VISIBILITY,
    MAX_WAIT,
    Depth,
    InvalidQueueArgument,
    Message,
    Queue,
    QueueError,
    StaleReceipt,
    VisibilityLimitExceeded,
)

if TYPE_CHECKING:
    from flowhost.lambdas.queue.sqs import SQSQueue

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
    "LocalQueue",
    "Message",
    "Queue",
    "QueueError",
    "SQSQueue",
    "StaleReceipt",
    "VisibilityLimitExceeded",
]


def __getattr__(name: str) -> object:
    if name == "SQSQueue":
        from flowhost.lambdas.queue.sqs import SQSQueue

        return SQSQueue
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
