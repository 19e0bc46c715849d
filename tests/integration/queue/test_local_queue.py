"""What only ``LocalQueue`` promises: durability across a reopen, many queues in one file,
exactly-once hand-out under concurrent receivers, and the dedup window."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from flowhost.lambdas.queue import DEDUP_WINDOW, LocalQueue, QueueError, StaleReceipt
from tests.integration.queue.support import FakeClock


def test_everything_survives_a_reopen(tmp_path: Path) -> None:
    path, clock = tmp_path / "queues.db", FakeClock()
    with LocalQueue(path, "jobs", max_receive_count=1, clock=clock) as queue:
        a = queue.send("a", dedup_key="k")
        b, c = queue.send("b"), queue.send("c")
        d = queue.send("d", delay=100)
        assert queue.receive(visibility_timeout=10)[0].id == a
        assert queue.receive(visibility_timeout=60)[0].id == b
        clock.advance(11)  # a times out, its one delivery used up
        assert queue.receive(visibility_timeout=60)[0].id == c  # and a is dead-lettered

    with LocalQueue(path, "jobs", max_receive_count=1, clock=clock) as reopened:
        depth = reopened.depth()
        assert (depth.visible, depth.in_flight, depth.delayed) == (0, 2, 1)
        assert [(m.id, m.body, m.receive_count) for m in reopened.dead_letters()] == [(a, b"a", 1)]
        assert reopened.send("again", dedup_key="k") == a  # the key is remembered
        clock.advance(61)  # b and c time out too
        assert reopened.receive(10, visibility_timeout=60) == []  # out of deliveries
        assert {m.id for m in reopened.dead_letters()} == {a, b, c}
        assert reopened.depth().delayed == 1
        clock.advance(30)
        assert reopened.receive(visibility_timeout=60)[0].id == d


def test_an_in_flight_receipt_still_works_after_a_reopen(tmp_path: Path) -> None:
    path, clock = tmp_path / "queues.db", FakeClock()
    with LocalQueue(path, "jobs", clock=clock) as queue:
        queue.send("job")
        (message,) = queue.receive(visibility_timeout=60)
    with LocalQueue(path, "jobs", clock=clock) as reopened:
        assert reopened.receive(visibility_timeout=60) == []
        reopened.extend(message.receipt, 120)  # the worker outlived the platform restart
        reopened.delete(message.receipt)
        assert reopened.depth().total == 0


def test_one_file_holds_independent_queues(tmp_path: Path) -> None:
    path = tmp_path / "queues.db"
    with LocalQueue(path, "a") as a, LocalQueue(path, "b") as b:
        a.send("for a", dedup_key="same")
        b.send("for b", dedup_key="same")  # keys are per queue
        assert (a.depth().visible, b.depth().visible) == (1, 1)
        (message,) = a.receive(visibility_timeout=60)
        assert message.body == b"for a"
        with pytest.raises(StaleReceipt, match="not from this queue"):
            b.delete(message.receipt)
        a.delete(message.receipt)
        assert b.receive(visibility_timeout=60)[0].body == b"for b"


@pytest.mark.parametrize("shared", [False, True], ids=["own-connections", "one-queue-object"])
def test_concurrent_receivers_never_get_the_same_message(tmp_path: Path, shared: bool) -> None:
    path, workers, total = tmp_path / "queues.db", 4, 200
    with LocalQueue(path, "jobs") as producer:
        sent = {producer.send(f"m{i}") for i in range(total)}
        start = threading.Barrier(workers, timeout=30)  # a worker that fails to start breaks it

        def work(_: int) -> list[str]:
            queue = producer if shared else LocalQueue(path, "jobs")
            got: list[str] = []
            try:
                start.wait()
                while batch := queue.receive(3, visibility_timeout=300):
                    for message in batch:
                        got.append(message.id)
                        queue.delete(message.receipt)
            finally:
                if not shared:
                    queue.close()
            return got

        with ThreadPoolExecutor(workers) as pool:
            per_worker = list(pool.map(work, range(workers)))
        counts = Counter(i for got in per_worker for i in got)
        assert set(counts) == sent
        assert max(counts.values()) == 1  # each delivered exactly once
        assert producer.depth().total == 0


def test_a_dedup_key_is_remembered_for_the_window_only(tmp_path: Path) -> None:
    clock = FakeClock()
    with LocalQueue(tmp_path / "queues.db", "jobs", clock=clock) as queue:
        first = queue.send("x", dedup_key="k")
        (message,) = queue.receive(visibility_timeout=60)
        queue.delete(message.receipt)
        clock.advance(DEDUP_WINDOW - 1)
        assert queue.send("x", dedup_key="k") == first  # even after it was processed
        assert queue.depth().total == 0
        clock.advance(2)
        assert queue.send("x", dedup_key="k") != first
        assert queue.depth().visible == 1


def test_a_dead_message_counts_as_visible_until_a_receive_moves_it(tmp_path: Path) -> None:
    """As on SQS: the move to the dead-letter queue happens on receive."""
    clock = FakeClock()
    with LocalQueue(tmp_path / "q.db", "jobs", max_receive_count=1, clock=clock) as queue:
        queue.send("poison")
        (message,) = queue.receive(visibility_timeout=5)
        clock.advance(6)
        assert queue.depth().visible == 1
        assert queue.dead_letters() == []
        assert queue.receive(visibility_timeout=5) == []
        assert queue.depth().total == 0
        (dead,) = queue.dead_letters()
        assert (dead.id, dead.receive_count) == (message.id, 1)
        with pytest.raises(StaleReceipt, match="dead-letter queue after 1 deliveries"):
            queue.delete(message.receipt)


def test_reopening_with_another_max_receive_count_applies_it(tmp_path: Path) -> None:
    path, clock = tmp_path / "queues.db", FakeClock()
    with LocalQueue(path, "jobs", max_receive_count=1, clock=clock) as queue:
        queue.send("job")
        queue.receive(visibility_timeout=5)
    clock.advance(6)
    with LocalQueue(path, "jobs", max_receive_count=3, clock=clock) as queue:
        assert queue.max_receive_count == 3
        (message,) = queue.receive(visibility_timeout=5)
        assert message.receive_count == 2


def test_unusable_files_get_a_clear_error(tmp_path: Path) -> None:
    garbage = tmp_path / "not-a-db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(QueueError, match=r"cannot be opened as a queue database"):
        LocalQueue(garbage, "jobs")
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(QueueError, match=r"schema version 99 is newer"):
        LocalQueue(newer, "jobs")


@pytest.mark.parametrize("name", ["", "has space", "x" * 77, "dots.not.allowed"])
def test_queue_names_follow_the_sqs_rules(tmp_path: Path, name: str) -> None:
    with pytest.raises(QueueError, match="must be 1 to 76 letters"):
        LocalQueue(tmp_path / "q.db", name)


def test_an_idle_receive_takes_no_write_lock(tmp_path: Path) -> None:
    """Idle workers poll their queue all the time: an empty poll only reads, so it neither
    waits behind a writer nor holds writers up; work is still claimed when it comes."""
    path = tmp_path / "queues.db"
    with LocalQueue(path, "jobs", busy_timeout=10.0) as queue:
        writer = sqlite3.connect(path, isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")  # another process mid-write
            started = time.monotonic()
            assert queue.receive(visibility_timeout=30, wait=0.3) == []
            assert time.monotonic() - started < 2  # not the 10 s busy timeout
        finally:
            writer.rollback()
            writer.close()
        queue.send(b"work")
        [message] = queue.receive(visibility_timeout=30, wait=1)
        assert message.body == b"work"
