"""Fixtures of the Queue port's suite: the same tests against ``LocalQueue`` and ``SQSQueue``.

``queue`` is parametrized over both backends; ``advance(seconds)`` moves each one's time
its own way. The local queue reads an injected clock, so advancing it is instant. SQS
(moto in server mode on 127.0.0.1, from ``tests/integration/conftest.py``) honours
visibility timeouts and delays in real time, in whole seconds, so there ``advance``
sleeps: keep the timers in these tests to a second or two.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flowhost.lambdas.queue import LocalQueue, Queue, SQSQueue
from tests.integration.queue.support import MAX_RECEIVES, Backend, FakeClock


@pytest.fixture(params=["local", "sqs"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "local":
        clock = FakeClock()
        with LocalQueue(
            tmp_path / "queues.db", "jobs", max_receive_count=MAX_RECEIVES, clock=clock
        ) as local:
            yield Backend("local", local, clock.advance)
        return
    aws_client: Callable[[str], Any] = request.getfixturevalue("aws_client")
    name = f"jobs-{uuid.uuid4().hex[:12]}"  # a fresh queue per test
    with SQSQueue.create(aws_client("sqs"), name, max_receive_count=MAX_RECEIVES) as sqs:
        yield Backend("sqs", sqs, time.sleep)


@pytest.fixture
def queue(backend: Backend) -> Queue:
    return backend.queue


@pytest.fixture
def advance(backend: Backend) -> Callable[[float], None]:
    """``advance(seconds)``: let that much time pass for the queue under test."""
    return backend.advance
