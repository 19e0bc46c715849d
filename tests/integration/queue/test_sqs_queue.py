"""What only ``SQSQueue`` does: creating the queue pair with its RedrivePolicy, carrying
binary bodies over SQS's text-only bodies, and turning SQS errors into QueueErrors."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config

from flowhost.lambdas.queue import MAX_NAME, InvalidQueueArgument, QueueError, SQSQueue

SqsFactory = Callable[[str], Any]


def fresh_name() -> str:
    return f"q-{uuid.uuid4().hex[:12]}"


def test_create_makes_the_queue_and_its_dead_letter_queue(aws_client: SqsFactory) -> None:
    sqs, name = aws_client("sqs"), fresh_name()
    queue = SQSQueue.create(sqs, name, max_receive_count=4)
    assert queue.name == name
    assert queue.url.endswith(f"/{name}")
    assert queue.dead_letter_url.endswith(f"/{name}-dlq")
    main = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["RedrivePolicy"])
    dead = sqs.get_queue_attributes(
        QueueUrl=queue.dead_letter_url, AttributeNames=["QueueArn", "MessageRetentionPeriod"]
    )["Attributes"]
    policy = json.loads(main["Attributes"]["RedrivePolicy"])
    assert policy == {"deadLetterTargetArn": dead["QueueArn"], "maxReceiveCount": 4}
    assert dead["MessageRetentionPeriod"] == str(14 * 24 * 3600)

    queue.send("kept")
    again = SQSQueue.create(sqs, name, max_receive_count=6)  # idempotent, updates the policy
    assert (again.url, again.dead_letter_url) == (queue.url, queue.dead_letter_url)
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["RedrivePolicy"])[
            "Attributes"
        ]["RedrivePolicy"]
    )
    assert policy["maxReceiveCount"] == 6
    assert again.depth().visible == 1


def test_binary_bodies_travel_as_base64_and_text_as_is(aws_client: SqsFactory) -> None:
    sqs = aws_client("sqs")
    queue = SQSQueue.create(sqs, fresh_name())
    queue.send("plain text ✓")
    queue.send(b"\x00\x01 not sqs text")
    raw = sqs.receive_message(
        QueueUrl=queue.url, MaxNumberOfMessages=10, MessageAttributeNames=["flowhost-encoding"]
    )["Messages"]
    by_body = {m["Body"]: m.get("MessageAttributes") for m in raw}
    assert by_body["plain text ✓"] is None
    encoded = base64.b64encode(b"\x00\x01 not sqs text").decode()
    assert by_body[encoded] == {
        "flowhost-encoding": {"StringValue": "base64", "DataType": "String"}
    }


@pytest.mark.parametrize("name", ["", "has space", "x" * 77])
def test_create_refuses_names_sqs_would(aws_client: SqsFactory, name: str) -> None:
    with pytest.raises(InvalidQueueArgument, match="must be 1 to 76 letters"):
        SQSQueue.create(aws_client("sqs"), name)


def test_the_longest_name_leaves_room_for_the_dead_letter_suffix(aws_client: SqsFactory) -> None:
    name = fresh_name().ljust(MAX_NAME, "x")
    queue = SQSQueue.create(aws_client("sqs"), name)
    assert queue.dead_letter_url.endswith(f"/{name}-dlq")


def test_sqs_errors_name_the_queue_and_leak_no_credentials(moto_endpoint: str) -> None:
    secret = "flowhost-dummy-secret-" + uuid.uuid4().hex
    sqs = boto3.client(
        "sqs", endpoint_url=moto_endpoint, region_name="us-east-1",
        aws_access_key_id="flowhost-dummy-key", aws_secret_access_key=secret,
    )  # fmt: skip
    try:
        url = f"{moto_endpoint}/123456789012/never-created"
        queue = SQSQueue(sqs, url, f"{url}-dlq", max_receive_count=3)
        with pytest.raises(QueueError, match=r"queue 'never-created': SQS SendMessage") as raised:
            queue.send("x")
        assert "does not exist" in str(raised.value)
        assert secret not in str(raised.value)
        assert "flowhost-dummy-key" not in str(raised.value)
    finally:
        sqs.close()


def test_an_unreachable_endpoint_is_a_queue_error() -> None:
    sqs = boto3.client(
        "sqs", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
        aws_access_key_id="flowhost-dummy-key", aws_secret_access_key="flowhost-dummy-secret",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2),
    )  # fmt: skip
    try:
        queue = SQSQueue(sqs, "http://127.0.0.1:9/1/q", "http://127.0.0.1:9/1/q-dlq",
                         max_receive_count=3)  # fmt: skip
        with pytest.raises(QueueError, match=r"queue 'q': SQS GetQueueAttributes failed: Could"):
            queue.depth()
    finally:
        sqs.close()
