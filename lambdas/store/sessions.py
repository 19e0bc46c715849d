"""Transactions on the platform's database, for the stores that share its engine.

An outage of the database met in a transaction is raised as a flowhost error
(:mod:`flowhost.lambdas.store.faults`): 503 ``state_unavailable`` or 507
``state_storage_full``, never SQLAlchemy's own exception.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from flowhost.lambdas.store.faults import state_errors
from flowhost.lambdas.store.store import READ_ONLY

__all__ = ["Transactions"]


class Transactions:
    """``_tx()`` writes in one transaction; ``_read()`` only reads, taking no write lock
    on SQLite (a WAL snapshot), so polls and sweeps never wait behind a writer."""

    def __init__(self, engine: Engine) -> None:
        self._url = engine.url
        self._session = sessionmaker(engine, expire_on_commit=False)
        self._reader = sessionmaker(
            engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )

    @contextmanager
    def _tx(self) -> Generator[Session]:
        with state_errors(self._url), self._session.begin() as session:
            yield session

    @contextmanager
    def _read(self) -> Generator[Session]:
        with state_errors(self._url), self._reader.begin() as session:
            yield session
