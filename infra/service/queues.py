"""A service version's async queue and dead-letter queue.

Names match the control plane (``flowhost.lambdas.aws.SQSQueues``): the queue is
``<queueNamePrefix><service>-v<N>``, its dead-letter queue the same plus ``-dlq``; both
are encrypted with the platform key, and the queue redrives to the dead-letter queue
after ``max_receive_count`` receives. The control plane only looks them up
(``create=False``), so this module is where they come from on AWS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from flowhost.infra.tags import Tagging

__all__ = [
    "DEAD_LETTER_RETENTION_SECONDS",
    "DEAD_LETTER_SUFFIX",
    "MAX_QUEUE_NAME",
    "QueueArgs",
    "ServiceQueues",
    "create_queues",
    "queue_base_name",
]

DEAD_LETTER_SUFFIX = "-dlq"  # as flowhost.lambdas.queue.sqs
MAX_QUEUE_NAME = 80  # SQS: 1 to 80 characters, so the queue itself is at most 76
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 60 * 60  # the SQS maximum, as SQSQueue.create
KMS_REUSE_SECONDS = 300  # as SQSQueues' default


def queue_base_name(service: str, version: int) -> str:
    """The queue's name without the platform prefix (``flowhost.lambdas`` ``queue_name``)."""
    return f"{service}-v{version}"


@dataclass(frozen=True)
class QueueArgs:
    service: str
    version: int
    prefix: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    max_receive_count: int
    retention_seconds: int
    visibility_timeout_seconds: int
    tagging: Tagging


@dataclass(frozen=True)
class ServiceQueues:
    queue: aws.sqs.Queue
    dead_letter: aws.sqs.Queue
    name: pulumi.Output[str]
    dead_letter_name: pulumi.Output[str]


def create_queues(name: str, args: QueueArgs, parent: pulumi.Resource) -> ServiceQueues:
    """The dead-letter queue, then the queue that redrives to it."""
    child = pulumi.ResourceOptions(parent=parent)
    tags = args.tagging.tags
    queue_name = pulumi.Output.concat(
        args.prefix, queue_base_name(args.service, args.version)
    ).apply(_checked)
    dead_name = queue_name.apply(lambda n: n + DEAD_LETTER_SUFFIX)
    encryption = {
        "kms_master_key_id": args.kms_key_arn,
        "kms_data_key_reuse_period_seconds": KMS_REUSE_SECONDS,
    }
    dead_letter = aws.sqs.Queue(
        f"{name}-dlq",
        name=dead_name,
        message_retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
        **encryption,
        tags=tags(f"{name}-dlq"),
        opts=child,
    )
    queue = aws.sqs.Queue(
        f"{name}-queue",
        name=queue_name,
        message_retention_seconds=args.retention_seconds,
        visibility_timeout_seconds=args.visibility_timeout_seconds,
        receive_wait_time_seconds=20,  # long polling: fewer empty receives
        redrive_policy=dead_letter.arn.apply(
            lambda arn: json.dumps(
                {"deadLetterTargetArn": arn, "maxReceiveCount": args.max_receive_count}
            )
        ),
        **encryption,
        tags=tags(f"{name}-queue"),
        opts=child,
    )
    return ServiceQueues(queue, dead_letter, queue_name, dead_name)


def _checked(name: str) -> str:
    """A queue name whose dead-letter name still fits SQS's limit (checked once the
    platform's prefix is known; ServiceSpec checks earlier when it already is)."""
    limit = MAX_QUEUE_NAME - len(DEAD_LETTER_SUFFIX)
    if len(name) > limit:
        raise ValueError(
            f"queue {name!r}: longer than {limit} characters (got {len(name)}), so its "
            f"dead-letter queue would exceed SQS's {MAX_QUEUE_NAME}. Use a shorter service name."
        )
    return name
