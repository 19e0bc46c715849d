"""The state database's outages as flowhost errors, decided in one place.

Every transaction of the stores runs inside :func:`state_errors`. A database that cannot
be reached, restarts, or is too busy becomes :class:`~flowhost.errors.StateUnavailableError`
(503 ``state_unavailable`` with ``Retry-After``); a full disk becomes
:class:`~flowhost.errors.StateStorageFullError` (507 ``state_storage_full``) naming the
directory to free. Anything else (a constraint, a bug in a query) is raised unchanged.
Messages name where the database is and what to do, never the driver's own text (it may
carry connection details); that goes to the log, at most once per ``_LOG_EVERY`` seconds
per kind so an outage under load does not flood it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import URL
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from flowhost.errors import FlowhostError, StateStorageFullError, StateUnavailableError

__all__ = ["RETRY_AFTER", "state_errors", "translate"]

log = logging.getLogger("flowhost.store")

RETRY_AFTER = 5  # seconds a client is told to wait when the database is down
_BUSY_RETRY_AFTER = 1  # ... and when it is only busy (SQLite's write lock)
_LOG_EVERY = 10.0

# SQLite result codes (their names, as sqlite3 errors carry them) that pass with time.
_SQLITE_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")
_SQLITE_IO = ("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PROTOCOL")
_PG_DISK_FULL = "53100"  # disk_full
_PG_OUT_OF_RESOURCES = ("53",)  # insufficient_resources: too many connections, memory
_logged: dict[str, float] = {}
_logged_lock = threading.Lock()


def _where(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        return f"the SQLite state database {url.database or ':memory:'}"
    port = f":{url.port}" if url.port else ""
    return f"the PostgreSQL state database {url.database} on {url.host}{port}"


def _directory(url: URL) -> str:
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return str(Path(str(url.database)).resolve().parent)
    return "the database server's data directory"


def _log_once(kind: str, where: str, exc: BaseException) -> None:
    now = time.monotonic()
    with _logged_lock:
        if now - _logged.get(kind, -_LOG_EVERY) < _LOG_EVERY:
            return
        _logged[kind] = now
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    log.warning(
        "state database %s: %s", kind, first_line[:300], extra={"fields": {"database": where}}
    )


def _sqlite_name(orig: BaseException) -> str:
    name = getattr(orig, "sqlite_errorname", None)
    if isinstance(name, str):
        return name
    text = str(orig).lower()  # an error built without its code (older sqlite3 modules)
    if "disk is full" in text:
        return "SQLITE_FULL"
    if "locked" in text:
        return "SQLITE_BUSY"
    if "disk i/o" in text:
        return "SQLITE_IOERR"
    return "SQLITE_ERROR"


def _full(where: str, directory: str) -> StateStorageFullError:
    return StateStorageFullError(
        f"{where}: the disk is full; nothing was written (got 'database or disk is full'). "
        f"Free space in {directory} (or give it a larger volume); writes work again as "
        "soon as there is room, and reads work meanwhile."
    )


def _unavailable(where: str, reason: str, fix: str, retry_after: int) -> StateUnavailableError:
    return StateUnavailableError(
        f"{where} is unavailable ({reason}); the request did not complete. Retry after "
        f"{retry_after} s. {fix}",
        retry_after=retry_after,
    )


def translate(exc: BaseException, url: URL) -> FlowhostError | None:
    """The flowhost error ``exc`` (raised by SQLAlchemy on ``url``) stands for, or None
    when it is not an outage and should be raised as it is."""
    where = _where(url)
    if isinstance(exc, PoolTimeoutError):
        _log_once("pool exhausted", where, exc)
        return _unavailable(
            where, "every connection is in use", "If this persists, raise the pool size.",
            _BUSY_RETRY_AFTER,
        )  # fmt: skip
    if not isinstance(exc, DBAPIError):
        return None
    orig: BaseException = exc.orig if exc.orig is not None else exc
    if isinstance(orig, sqlite3.Error):
        name = _sqlite_name(orig)
        if name.startswith("SQLITE_FULL"):
            _log_once("disk full", where, orig)
            return _full(where, _directory(url))
        if name.startswith(_SQLITE_BUSY):
            _log_once("busy", where, orig)
            return _unavailable(
                where, "another writer holds its lock", "If this persists, look for a stuck "
                "process holding the database open.", _BUSY_RETRY_AFTER,
            )  # fmt: skip
        if name.startswith(_SQLITE_IO):
            _log_once("unreadable", where, orig)
            return _unavailable(
                where, f"it could not be read or written: {name}",
                f"Check that {_directory(url)} exists, is writable and has free space.",
                RETRY_AFTER,
            )  # fmt: skip
        return None
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == _PG_DISK_FULL:
        _log_once("disk full", where, orig)
        return _full(where, _directory(url))
    if isinstance(sqlstate, str) and sqlstate.startswith(_PG_OUT_OF_RESOURCES):
        _log_once("out of resources", where, orig)
        return _unavailable(
            where, f"the server is out of resources, SQLSTATE {sqlstate}",
            "If this persists, check the server's connection limit and memory.", RETRY_AFTER,
        )  # fmt: skip
    if exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError)):
        _log_once("unreachable", where, orig)
        return _unavailable(
            where, "it cannot be reached, or the connection to it was lost",
            "If this persists, check that the database server is running and reachable "
            "from the platform.", RETRY_AFTER,
        )  # fmt: skip
    return None


@contextmanager
def state_errors(url: URL) -> Generator[None]:
    """Raise the database's outages met inside the block as flowhost errors."""
    try:
        yield
    except (DBAPIError, PoolTimeoutError) as exc:
        error = translate(exc, url)
        if error is None:
            raise
        raise error from exc
