"""SQSQueues, the AWS QueueProvider, through the real boto3 SQS client against moto:
per-version queue pairs with the redrive policy, KMS encryption, look-up only mode."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowhost.errors import NotFoundError
from flowhost.lambdas.async_requests.queues import QueueProvider
from flowhost.lambdas.aws import SQSQueues
from flowhost.lambdas.queue import InvalidQueueArgument, SQSQueue
from tests.integration.aws.support import fresh


def attributes(sqs: Any, url: str) -> dict[str, str]:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def test_a_versions_queue_and_dead_letter_queue(aws_client: Any) -> None:
    sqs, prefix = aws_client("sqs"), fresh("fh") + "-"
    provider: QueueProvider = SQSQueues(sqs, prefix=prefix, max_receive_count=4)
    queue = provider.queue("sentiment", 3)
    assert isinstance(queue, SQSQueue)
    assert queue.name == f"{prefix}sentiment-v3"
    assert queue.dead_letter_url.endswith(f"/{prefix}sentiment-v3-dlq")
    assert queue.max_receive_count == 4
    dead = attributes(sqs, queue.dead_letter_url)
    policy = json.loads(attributes(sqs, queue.url)["RedrivePolicy"])
    assert policy == {"deadLetterTargetArn": dead["QueueArn"], "maxReceiveCount": 4}
    assert "KmsMasterKeyId" not in attributes(sqs, queue.url)

    assert provider.queue("sentiment", 3) is queue  # one SQSQueue per version and process
    assert provider.queue("sentiment", 4).name == f"{prefix}sentiment-v4"

    queue.send('{"request_id": "req_1"}')
    (message,) = queue.receive(visibility_timeout=5)
    assert message.text == '{"request_id": "req_1"}'
    queue.delete(message.receipt)
    provider.close()


def test_both_queues_are_encrypted_with_the_platform_key(aws_client: Any) -> None:
    sqs, key = aws_client("sqs"), "alias/flowhost-platform"
    queues = SQSQueues(sqs, prefix=fresh("fh") + "-", kms_key_id=key, kms_reuse_seconds=600)
    queue = queues.queue("svc", 1)
    for url in (queue.url, queue.dead_letter_url):
        found = attributes(sqs, url)
        assert found["KmsMasterKeyId"] == key
        assert found["KmsDataKeyReusePeriodSeconds"] == "600"


def test_look_up_only_reads_the_existing_redrive_policy(aws_client: Any) -> None:
    sqs, prefix = aws_client("sqs"), fresh("fh") + "-"
    made = SQSQueues(sqs, prefix=prefix, max_receive_count=7).queue("svc", 2)
    found = SQSQueues(sqs, prefix=prefix, create=False).queue("svc", 2)
    assert (found.url, found.dead_letter_url) == (made.url, made.dead_letter_url)
    assert found.max_receive_count == 7

    with pytest.raises(NotFoundError) as caught:
        SQSQueues(sqs, prefix=prefix, create=False).queue("svc", 9)
    assert caught.value.message.startswith(f"SQS queue '{prefix}svc-v9': not found (got ")
    assert "Deploy the version again" in caught.value.message


def test_remove_deletes_the_pair_and_tolerates_what_is_gone(aws_client: Any) -> None:
    sqs, prefix = aws_client("sqs"), fresh("fh") + "-"
    queues = SQSQueues(sqs, prefix=prefix)
    queues.queue("svc", 1)
    queues.remove("svc", 1)
    names = sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
    assert names == []
    queues.remove("svc", 1)  # nothing left: no error


def test_bad_settings_are_refused_up_front(aws_client: Any) -> None:
    sqs = aws_client("sqs")
    with pytest.raises(InvalidQueueArgument, match=r"max_receive_count must be between 1"):
        SQSQueues(sqs, max_receive_count=0)
    with pytest.raises(ValueError, match=r"kms_reuse_seconds must be between 60 and 86400"):
        SQSQueues(sqs, kms_key_id="k", kms_reuse_seconds=5)
    with pytest.raises(InvalidQueueArgument, match=r"must be 1 to 76 letters"):
        SQSQueues(sqs, prefix="x" * 70).queue("service", 1)
