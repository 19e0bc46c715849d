"""``LocalQueue``: the Queue port on one SQLite file (the local platform's default).

One file holds any number of named queues, each with its dead letters; messages,
receive counts, receipts and dedup keys survive a restart. Every change runs in a
``BEGIN IMMEDIATE`` transaction (WAL, busy_timeout), so two processes or threads never
receive the same visible message. Durable against a crash of the process (kill -9);
with ``synchronous=NORMAL`` a power loss may drop the last commits.

Time comes from ``clock`` (seconds since the epoch), so tests move it instead of
sleeping. Long polls (``wait``) measure real time and poll every ``poll_interval``.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Generator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from flowhost.lambdas.queue.port import (
    DEDUP_WINDOW,
    MAX_VISIBILITY,
    Depth,
    InvalidQueueArgument,
    Message,
    StaleReceipt,
    VisibilityLimitExceeded,
    check_limit,
    check_max_receive_count,
    check_name,
    check_receive,
    check_send,
    check_visibility,
)
from flowhost.lambdas.queue.sqlite import connect

__all__ = ["LocalQueue"]


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class LocalQueue:
    """The queue ``name`` in the SQLite file at ``path`` (created if missing).

    Thread-safe: one connection, used under a lock. Close it when done.
    """

    deduplicates = True

    def __init__(
        self,
        path: Path | str,
        name: str,
        *,
        max_receive_count: int = 5,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 0.05,
        busy_timeout: float = 10.0,
    ) -> None:
        self.name = check_name(name)
        check_max_receive_count(name, max_receive_count)
        self.max_receive_count = max_receive_count
        self.path = Path(path)
        self._clock = clock
        self._poll_interval = poll_interval
        self._lock = threading.Lock()
        self._db = connect(self.path, busy_timeout)
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO queues (name, max_receive_count) VALUES (?, ?) ON CONFLICT "
                    "(name) DO UPDATE SET max_receive_count = excluded.max_receive_count",
                    (self.name, self.max_receive_count),
                )
        except BaseException:
            self._db.close()
            raise

    @contextmanager
    def _transaction(self) -> Generator[sqlite3.Connection]:
        """One write transaction: the write lock is taken up front (waiting up to
        busy_timeout), so a read-then-update can never race another connection."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def send(self, body: bytes | str, *, dedup_key: str | None = None, delay: float = 0) -> str:
        data = check_send(self.name, body, dedup_key, delay)
        now = self._clock()
        with self._transaction() as db:
            if dedup_key is not None:
                db.execute("DELETE FROM queue_dedup WHERE expires_at <= ?", (now,))
                row = db.execute(
                    "SELECT message_id FROM queue_dedup WHERE queue = ? AND key = ?",
                    (self.name, dedup_key),
                ).fetchone()
                if row is not None:
                    return str(row[0])
            message_id = str(uuid.uuid4())
            db.execute(
                "INSERT INTO queue_messages (id, queue, body, sent_at, visible_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (message_id, self.name, data, now, now + delay),
            )
            if dedup_key is not None:
                db.execute(
                    "INSERT INTO queue_dedup (queue, key, message_id, expires_at) "
                    "VALUES (?, ?, ?, ?)",
                    (self.name, dedup_key, message_id, now + DEDUP_WINDOW),
                )
        return message_id

    def receive(
        self, max_messages: int = 1, *, visibility_timeout: float, wait: float = 0
    ) -> list[Message]:
        check_receive(self.name, max_messages, visibility_timeout, wait)
        deadline = time.monotonic() + wait
        while True:
            # An idle poll only reads (no write lock); the claim takes it when there is work.
            ready = self._any_visible()
            messages = self._receive_now(max_messages, visibility_timeout) if ready else []
            left = deadline - time.monotonic()
            if messages or left <= 0:
                return messages
            time.sleep(min(self._poll_interval, left))

    def _any_visible(self) -> bool:
        """Whether a message is visible now (or due for the dead-letter queue): one indexed
        read in autocommit mode, which waits for no writer."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM queue_messages WHERE queue = ? AND dead_at IS NULL "
                "AND visible_at <= ? LIMIT 1",
                (self.name, self._clock()),
            ).fetchone()
        return row is not None

    def _receive_now(self, max_messages: int, visibility_timeout: float) -> list[Message]:
        now = self._clock()
        with self._transaction() as db:
            # Visible messages out of deliveries go to the dead-letter queue instead.
            db.execute(
                "UPDATE queue_messages SET dead_at = ? WHERE queue = ? AND dead_at IS NULL "
                "AND visible_at <= ? AND receive_count >= ?",
                (now, self.name, now, self.max_receive_count),
            )
            rows = db.execute(
                "SELECT id, body, sent_at, receive_count FROM queue_messages "
                "WHERE queue = ? AND dead_at IS NULL "
                "AND visible_at <= ? ORDER BY visible_at, sent_at, rowid LIMIT ?",
                (self.name, now, max_messages),
            ).fetchall()
            messages: list[Message] = []
            for message_id, body, sent_at, receive_count in rows:
                token = secrets.token_urlsafe(16)
                db.execute(
                    "UPDATE queue_messages SET receive_count = ?, receipt = ?, received_at = ?, "
                    "visible_at = ? WHERE id = ?",
                    (receive_count + 1, token, now, now + visibility_timeout, message_id),
                )
                receipt = f"{message_id}.{token}"
                count, sent = receive_count + 1, _utc(sent_at)
                messages.append(Message(message_id, receipt, bytes(body), count, sent))
        return messages

    def _current_delivery(self, db: sqlite3.Connection, receipt: str, action: str) -> float:
        """``received_at`` of the delivery ``receipt`` names, or StaleReceipt."""
        message_id, _, token = receipt.partition(".")
        row = db.execute(
            "SELECT receipt, received_at, receive_count, dead_at FROM queue_messages "
            "WHERE id = ? AND queue = ?",
            (message_id, self.name),
        ).fetchone()
        where = f"queue {self.name!r}: cannot {action} message {message_id!r}"
        if row is None or not token:
            raise StaleReceipt(
                f"{where}: no such message (already deleted, or the receipt is not from this "
                "queue). Receive the message again; only its latest receipt works."
            )
        current, received_at, receive_count, dead_at = row
        if dead_at is not None:
            raise StaleReceipt(
                f"{where}: it was moved to the dead-letter queue after {receive_count} "
                "deliveries. See dead_letters()."
            )
        if not secrets.compare_digest(str(current or ""), token):
            raise StaleReceipt(
                f"{where}: the receipt is stale (the message was delivered again, delivery "
                f"{receive_count}, after its visibility timed out). Leave it to the new "
                "receiver; heartbeat with extend() to keep long jobs."
            )
        return float(received_at)

    def extend(self, receipt: str, visibility_timeout: float) -> None:
        check_visibility(self.name, visibility_timeout)
        now = self._clock()
        with self._transaction() as db:
            received_at = self._current_delivery(db, receipt, "extend")
            if now + visibility_timeout - received_at > MAX_VISIBILITY:
                left = max(0.0, received_at + MAX_VISIBILITY - now)
                raise VisibilityLimitExceeded(
                    f"queue {self.name!r}: cannot extend the delivery by "
                    f"{visibility_timeout:g}s: one delivery is hidden for at most "
                    f"{MAX_VISIBILITY:g}s in total and {left:g}s are left. Finish or "
                    "hand the message back within 12 hours of receiving it."
                )
            db.execute(
                "UPDATE queue_messages SET visible_at = ? WHERE id = ?",
                (now + visibility_timeout, receipt.partition(".")[0]),
            )

    def delete(self, receipt: str) -> None:
        with self._transaction() as db:
            self._current_delivery(db, receipt, "delete")
            db.execute("DELETE FROM queue_messages WHERE id = ?", (receipt.partition(".")[0],))

    def depth(self) -> Depth:
        now = self._clock()
        with self._lock:
            visible, in_flight, delayed, oldest = self._db.execute(
                "SELECT "
                "  COALESCE(SUM(visible_at <= :now), 0),"
                "  COALESCE(SUM(visible_at > :now AND receive_count > 0), 0),"
                "  COALESCE(SUM(visible_at > :now AND receive_count = 0), 0),"
                "  MIN(sent_at) "
                "FROM queue_messages WHERE queue = :queue AND dead_at IS NULL",
                {"now": now, "queue": self.name},
            ).fetchone()
        age = 0.0 if oldest is None else max(0.0, now - float(oldest))
        return Depth(int(visible), int(in_flight), int(delayed), age)

    def dead_letters(self, limit: int = 10) -> list[Message]:
        check_limit(self.name, limit)
        with self._lock:
            rows = self._db.execute(
                "SELECT id, body, sent_at, receive_count FROM queue_messages "
                "WHERE queue = ? AND dead_at IS NOT NULL "
                "ORDER BY dead_at, sent_at, rowid LIMIT ?",
                (self.name, limit),
            ).fetchall()
        return [
            Message(id=i, receipt=f"{i}.dead", body=bytes(b), receive_count=n, sent_at=_utc(s))
            for i, b, s, n in rows
        ]

    def remove_dead_letter(self, receipt: str) -> None:
        message_id, _, kind = receipt.partition(".")
        if kind != "dead":
            raise InvalidQueueArgument(
                f"queue {self.name!r}: {receipt[:40]!r} is not a dead letter's receipt. Pass the "
                "receipt of a message that dead_letters() listed."
            )
        with self._transaction() as db:
            db.execute(
                "DELETE FROM queue_messages WHERE id = ? AND queue = ? AND dead_at IS NOT NULL",
                (message_id, self.name),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocalQueue({str(self.path)!r}, {self.name!r})"
