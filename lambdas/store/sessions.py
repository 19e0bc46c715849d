"""Transactions on the platform's database, for the stores that share its engine."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from flowhost.lambdas.store.store import READ_ONLY

__all__ = ["Transactions"]


class Transactions:
    """``_tx()`` writes in one transaction; ``_read()`` only reads, taking no write lock
    on SQLite (a WAL snapshot), so polls and sweeps never wait behind a writer."""

    def __init__(self, engine: Engine) -> None:
        self._session = sessionmaker(engine, expire_on_commit=False)
        self._reader = sessionmaker(
            engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )

    @contextmanager
    def _tx(self) -> Generator[Session]:
        with self._session.begin() as session:
            yield session

    @contextmanager
    def _read(self) -> Generator[Session]:
        with self._reader.begin() as session:
            yield session
