"""Which database errors are outages (``faults.translate``), told apart from the rest.

The errors are SQLAlchemy's wrappers around the drivers' own, as a failing statement
raises them; the real outages (PostgreSQL stopped, a full SQLite file) are in
test_state_outage.py and tests/integration/test_state_disk_full.py.
"""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from flowhost.errors import StateStorageFullError, StateUnavailableError
from flowhost.lambdas.store.faults import state_errors, translate

SQLITE = make_url("sqlite:////srv/flowhost/state.db")
POSTGRES = make_url("postgresql+psycopg://flowhost:s3cret@db.internal:5432/flowhost")


def _sqlite(message: str, name: str) -> OperationalError:
    orig = sqlite3.OperationalError(message)
    orig.sqlite_errorname = name  # pyright: ignore[reportAttributeAccessIssue]
    return OperationalError("INSERT ...", {}, orig)


def test_sqlite_busy_is_unavailable_for_a_second() -> None:
    error = translate(_sqlite("database is locked", "SQLITE_BUSY"), SQLITE)
    assert isinstance(error, StateUnavailableError)
    assert error.headers == {"Retry-After": "1"}
    assert "/srv/flowhost/state.db" in error.message


def test_sqlite_full_is_storage_full_naming_the_directory() -> None:
    error = translate(_sqlite("database or disk is full", "SQLITE_FULL"), SQLITE)
    assert isinstance(error, StateStorageFullError)
    assert (error.status, error.code) == (507, "state_storage_full")
    assert "Free space in /srv/flowhost" in error.message


def test_a_sqlite_error_that_is_no_outage_is_raised_as_it_is() -> None:
    assert translate(_sqlite("no such table: services", "SQLITE_ERROR"), SQLITE) is None
    integrity = IntegrityError("INSERT ...", {}, sqlite3.IntegrityError("UNIQUE failed"))
    assert translate(integrity, SQLITE) is None


def test_postgres_connection_errors_are_unavailable_without_the_password() -> None:
    orig = psycopg.OperationalError("connection to server at db.internal failed: refused")
    error = translate(OperationalError("SELECT 1", {}, orig), POSTGRES)
    assert isinstance(error, StateUnavailableError)
    assert error.headers == {"Retry-After": "5"}
    assert "flowhost on db.internal:5432" in error.message
    assert "s3cret" not in error.message
    assert "refused" not in error.message  # the driver's text goes to the log only


def test_postgres_disk_full_is_storage_full() -> None:
    error = translate(OperationalError("INSERT ...", {}, psycopg.errors.DiskFull()), POSTGRES)
    assert isinstance(error, StateStorageFullError)


def test_an_invalidated_connection_and_an_exhausted_pool_are_unavailable() -> None:
    lost = DBAPIError("SELECT 1", {}, psycopg.Error("gone"), connection_invalidated=True)
    assert isinstance(translate(lost, POSTGRES), StateUnavailableError)
    exhausted = PoolTimeoutError("QueuePool limit")
    assert isinstance(translate(exhausted, POSTGRES), StateUnavailableError)


def test_state_errors_raises_the_translation_and_lets_others_through() -> None:
    with pytest.raises(StateUnavailableError) as caught, state_errors(SQLITE):
        raise _sqlite("database is locked", "SQLITE_BUSY")
    assert isinstance(caught.value.__cause__, OperationalError)
    with pytest.raises(KeyError), state_errors(SQLITE):
        raise KeyError("not the database's")
