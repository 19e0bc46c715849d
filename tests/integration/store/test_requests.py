"""Async request records on SQLite and PostgreSQL: ids, idempotency, write-once results, TTL."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from threading import Barrier

import pytest
from sqlalchemy import event

from flowhost.errors import NotFoundError
from flowhost.lambdas.store import StateStore
from flowhost.lambdas.store.models import utcnow
from flowhost.lambdas.store.requests import RequestStore

TTL = timedelta(hours=1)


@pytest.fixture
def requests(store: StateStore) -> RequestStore:
    return RequestStore(store.engine)


def submit(requests: RequestStore, key: str | None = None) -> str:
    record, _ = requests.create(
        service="echo", endpoint="echo", target="production", payload_key="payloads/x",
        timeout_seconds=60, idempotency_key=key, callback_url="http://127.0.0.1:9/cb",
    )  # fmt: skip
    return record.id


def test_ids_are_unguessable_and_records_round_trip(requests: RequestStore) -> None:
    ids = {submit(requests) for _ in range(20)}
    assert len(ids) == 20
    assert all(i.startswith("req_") and len(i) >= 32 for i in ids)
    record = requests.get(next(iter(ids)))
    assert (record.status, record.attempts, record.version) == ("queued", 0, None)
    assert record.callback_url == "http://127.0.0.1:9/cb"
    assert record.created_at.utcoffset() == timedelta(0)


def test_unknown_request_says_where_ids_come_from(requests: RequestStore) -> None:
    with pytest.raises(NotFoundError, match=r"no request 'req_nope'.*POST /\{service\}"):
        requests.get("req_nope")


def test_the_same_idempotency_key_returns_the_same_request(requests: RequestStore) -> None:
    first = submit(requests, key="order-17")
    again, created = requests.create(
        service="echo", endpoint="echo", target="production", payload_key="payloads/y",
        timeout_seconds=60, idempotency_key="order-17",
    )  # fmt: skip
    assert (again.id, created) == (first, False)
    other, created = requests.create(
        service="other", endpoint="echo", target="production", payload_key="payloads/z",
        timeout_seconds=60, idempotency_key="order-17",
    )  # fmt: skip
    assert created
    assert other.id != first


def test_concurrent_submits_with_one_key_make_one_request(requests: RequestStore) -> None:
    threads = 6
    start = Barrier(threads)

    def go(_: int) -> str:
        start.wait()
        return submit(requests, key="same")

    with ThreadPoolExecutor(threads) as pool:
        ids = set(pool.map(go, range(threads)))
    assert len(ids) == 1


def test_attempts_count_and_the_result_is_written_once(requests: RequestStore) -> None:
    rid = submit(requests)
    running = requests.start(rid, version=3)
    assert running is not None
    assert (running.status, running.attempts, running.version) == ("running", 1, 3)
    again = requests.start(rid, version=3)  # redelivered after a worker died
    assert again is not None
    assert again.attempts == 2
    assert requests.finish(rid, "succeeded", ttl=TTL, result_key="results/1")
    assert not requests.finish(rid, "succeeded", ttl=TTL, result_key="results/2")
    assert not requests.finish(rid, "failed", ttl=TTL, error="late duplicate")
    assert requests.start(rid, version=3) is None  # finished: not run again
    done = requests.get(rid)
    assert (done.status, done.result_key, done.error) == ("succeeded", "results/1", None)
    assert done.finished_at is not None
    assert done.expires_at == done.finished_at + TTL


def test_failure_keeps_its_error(requests: RequestStore) -> None:
    rid = submit(requests)
    requests.start(rid, version=1)
    assert requests.finish(rid, "failed", ttl=TTL, error="ValueError: bad input")
    assert requests.get(rid).error == "ValueError: bad input"


def test_finished_requests_expire_after_their_ttl(requests: RequestStore) -> None:
    old, fresh, pending = submit(requests), submit(requests), submit(requests)
    requests.finish(old, "succeeded", ttl=timedelta(seconds=-1), result_key="results/old")
    requests.finish(fresh, "succeeded", ttl=TTL, result_key="results/fresh")
    expired = requests.expire(utcnow())
    assert [r.id for r in expired] == [old]
    assert requests.get(old).status == "expired"
    assert requests.get(fresh).status == "succeeded"
    assert requests.get(pending).status == "queued"
    assert requests.expire(utcnow()) == []
    assert not requests.finish(old, "succeeded", ttl=TTL)  # expired stays expired


def test_expired_records_are_deleted_after_their_retention(requests: RequestStore) -> None:
    old, recent, live = submit(requests), submit(requests), submit(requests)
    requests.finish(old, "succeeded", ttl=timedelta(days=-8), result_key="results/old")
    requests.finish(recent, "failed", ttl=timedelta(seconds=-1), error="e")
    requests.finish(live, "succeeded", ttl=TTL, result_key="results/live")
    assert {r.id for r in requests.expire(utcnow())} == {old, recent}
    assert requests.purge(utcnow() - timedelta(days=7)) == 1
    with pytest.raises(NotFoundError):
        requests.get(old)
    assert requests.get(recent).status == "expired"  # still answers 410 for a while
    assert requests.get(live).status == "succeeded"
    assert requests.purge(utcnow() - timedelta(days=7)) == 0


def test_callback_outcome_is_recorded(requests: RequestStore) -> None:
    rid = submit(requests)
    requests.set_callback_status(rid, "gave_up")
    assert requests.get(rid).callback_status == "gave_up"


def test_the_sweep_queries_use_the_status_indexes(store: StateStore, store_url: str) -> None:
    """Expired rows stay in the table: the sweeps must reach their rows by index, never by
    scanning every request ever made (SQLite's plan; PostgreSQL's depends on statistics)."""
    if not store_url.startswith("sqlite"):
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's")
    requests = RequestStore(store.engine)
    submit(requests)
    statements: list[tuple[str, object]] = []

    def capture(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "async_requests" in statement:
            statements.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        requests.unfinished_page(None)
        requests.unfinished_page("req_0")
        requests.pending_callbacks()
        requests.expire()
        requests.purge(utcnow())
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    assert len(statements) == 5
    with store.engine.connect() as conn:
        for statement, params in statements:
            raw = conn.connection.driver_connection
            assert raw is not None
            plan = " | ".join(
                row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", params)
            )
            assert "INDEX ix_async_requests_status_" in plan, f"{statement}\n-> {plan}"


def test_status_reads_do_not_wait_for_a_writer(store: StateStore, store_url: str) -> None:
    """On SQLite every write transaction takes the write lock up front; reads (status
    polls, the sweeps' queries) take none, so a long write elsewhere never holds them."""
    if not store_url.startswith("sqlite"):
        pytest.skip("PostgreSQL readers never wait for writers")
    requests = RequestStore(store.engine)
    request_id = submit(requests)
    writer = sqlite3.connect(store_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process mid-write
        started = time.monotonic()
        assert requests.get(request_id).status == "queued"
        assert [r.id for r in requests.unfinished_page(None)] == [request_id]
        assert requests.pending_callbacks() == []
        assert time.monotonic() - started < 2  # busy_timeout is 10 s
    finally:
        writer.rollback()
        writer.close()
