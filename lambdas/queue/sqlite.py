"""The SQLite file behind ``LocalQueue``: its schema, and connections set up for it.

WAL lets readers work while one writer commits; ``busy_timeout`` makes a writer wait
for the lock instead of failing; ``synchronous=NORMAL`` survives a crash of the process
(a power loss may drop the last commits). Connections run in autocommit mode, so every
transaction is an explicit ``BEGIN IMMEDIATE`` (see ``LocalQueue._transaction``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flowhost.lambdas.queue.port import QueueError

__all__ = ["SCHEMA_VERSION", "connect"]

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    max_receive_count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS queue_messages (
    id TEXT PRIMARY KEY,
    queue TEXT NOT NULL REFERENCES queues (name),
    body BLOB NOT NULL,
    sent_at REAL NOT NULL,
    visible_at REAL NOT NULL,         -- sent_at + delay, then received_at + visibility
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT,                     -- token of the current delivery
    received_at REAL,                 -- start of the current delivery
    dead_at REAL                      -- set once moved to the dead-letter queue
);
CREATE INDEX IF NOT EXISTS queue_messages_ready ON queue_messages (queue, dead_at, visible_at);
CREATE TABLE IF NOT EXISTS queue_dedup (
    queue TEXT NOT NULL,
    key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (queue, key)
);
"""


def _unusable(path: Path, error: sqlite3.Error) -> QueueError:
    return QueueError(
        f"queue file {path}: cannot be opened as a queue database ({error}). "
        "Point LocalQueue at a writable queue file or a new path."
    )


def _create_schema(db: sqlite3.Connection, path: Path) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise QueueError(
                f"queue file {path}: schema version {version} is newer than this "
                f"flowhost's ({SCHEMA_VERSION}). Upgrade flowhost or use another file."
            )
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A connection to the queue file at ``path``, its schema created or checked."""
    try:
        db = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as error:
        raise _unusable(path, error) from error
    try:
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        _create_schema(db, path)
    except sqlite3.Error as error:
        db.close()
        raise _unusable(path, error) from error
    except BaseException:
        db.close()
        raise
    return db
