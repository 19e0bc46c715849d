"""The task role a ServiceSpec gives its service against every AWS call the container's
worker makes (moto does not enforce IAM: this is where a missing grant shows)."""

from __future__ import annotations

import fnmatch
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowhost.lambdas.aws.container import fetch_package
from flowhost.lambdas.aws.container_settings import ContainerSettings
from flowhost.lambdas.jobs import job_message, payload_key
from flowhost.lambdas.s3objects import S3ObjectStore
from flowhost.services.packaging import package_key
from tests.integration.aws.container_support import (
    SERVICE,
    Package,
    Platform,
    container_env,
    service_spec_run,
)
from tests.integration.support import poll

# botocore operation -> the IAM action it needs (reads of a key need s3:GetObject).
S3_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
}


def role_allows(document: dict[str, Any], action: str, resource: str) -> bool:
    """Whether an Allow statement names ``action`` and a resource pattern matching
    ``resource`` (conditions, which only narrow KMS use, are not evaluated)."""
    for statement in document["Statement"]:
        actions, resources = statement["Action"], statement["Resource"]
        actions = actions if isinstance(actions, list) else [actions]
        resources = resources if isinstance(resources, list) else [resources]
        if (
            statement["Effect"] == "Allow"
            and action in actions
            and any(fnmatch.fnmatchcase(resource, pattern) for pattern in resources)
        ):
            return True
    return False


def test_the_task_role_allows_every_call_the_container_makes(
    base_env: dict[str, str], moto_endpoint: str, platform: Platform, package: Package,
    tmp_path: Path, aws_client: Callable[[str], Any],
) -> None:  # fmt: skip
    """The container's AWS calls (fetch the package; claim, heartbeat, succeed, lose a race,
    retry, fail and hand back jobs) against moto, each checked against the task role a
    ServiceSpec gives its service: moto does not enforce IAM, so this is where a missing
    grant shows (the tiny service's names stand in for this test's)."""
    uri = platform.upload(package)
    settings = ContainerSettings.from_env(
        container_env(base_env, moto_endpoint, platform, uri, package.digest, tmp_path,
                      FLOWHOST_ASYNC_VISIBILITY="3", FLOWHOST_ASYNC_RETRY_BACKOFF="0")
    )  # fmt: skip
    calls: list[tuple[str, str, dict[str, Any]]] = []
    s3, sqs = aws_client("s3"), aws_client("sqs")  # the container's own clients, recorded
    for client in (s3, sqs):
        client.meta.events.register(
            "before-parameter-build",
            lambda model, params, **_: calls.append(
                (model.service_model.service_name, model.name, params)
            ),
        )
    fetch_package(s3, uri, package.digest, settings.code_dir)
    from flowhost.lambdas.aws.container import queue_jobs

    jobs = queue_jobs(settings, s3, sqs)
    control = S3ObjectStore(platform.s3, platform.bucket)  # the control plane's side
    ids = ["req_" + uuid.uuid4().hex for _ in range(3)]
    for request_id in ids:
        control.put(payload_key(SERVICE, request_id), b'{"text": "x"}')
    platform.queue.send(job_message(ids[0], "echo", payload_key(SERVICE, ids[0])))
    platform.queue.send(job_message(ids[0], "echo", payload_key(SERVICE, ids[0])))  # a duplicate
    [first] = poll("the first delivery", lambda: jobs.receive(1, 0) or None, 10)
    [second] = poll("the duplicate", lambda: jobs.receive(1, 0) or None, 10)
    assert jobs.heartbeat(first)
    assert jobs.succeed(first, b'{"text": "X!"}')
    assert not jobs.succeed(second, b'{"text": "X!"}')  # lost: deletes its own result again
    for request_id in ids[1:]:
        platform.queue.send(job_message(request_id, "echo", payload_key(SERVICE, request_id)))
    failing = poll("two more deliveries", lambda: jobs.receive(2, 0) or None, 10)
    jobs.fail(failing[0], "endpoint_error", "boom", retry=True)  # back to the queue
    jobs.fail(failing[-1], "invalid_request", "bad", retry=False)  # failed for good
    if len(failing) > 1:
        jobs.release(failing[0])
    assert {op for _, op, _ in calls} >= {
        "GetObject", "HeadObject", "PutObject", "DeleteObject", "ReceiveMessage",
        "DeleteMessage", "ChangeMessageVisibility", "GetQueueAttributes",
    }  # fmt: skip

    document = json.loads(service_spec_run().named("tiny-task-policy").inputs["policy"])
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    tiny_bucket = by_sid["OwnAsyncObjects"]["Resource"].split("/", 1)[0]  # arn:aws:s3:::<b>
    tiny_package = by_sid["OwnCodePackage"]["Resource"]
    tiny_queue = by_sid["OwnQueue"]["Resource"]
    denied: list[str] = []
    for service, op, params in calls:
        if service == "s3":
            assert op in S3_ACTIONS, f"a call this test does not map yet: {op} {params}"
            key = params["Key"]
            if key == package_key(package.digest):
                resource = tiny_package
            else:
                resource = f"{tiny_bucket}/{key.replace(f'async/{SERVICE}/', 'async/tiny/', 1)}"
            action = S3_ACTIONS[op]
        else:
            assert params["QueueUrl"] == platform.queue.url, params  # never another queue
            resource, action = tiny_queue, f"sqs:{op}"
        if not role_allows(document, action, resource):
            denied.append(f"{op} -> {action} on {resource}")
    assert denied == [], "the task role does not allow:\n" + "\n".join(denied)
