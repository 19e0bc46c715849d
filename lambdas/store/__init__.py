"""The StateStore port: SQLAlchemy models and Alembic migrations, for SQLite and PostgreSQL."""

from flowhost.lambdas.store.records import AliasRecord, EventRecord, VersionRecord
from flowhost.lambdas.store.store import PRODUCTION, StateStore

__all__ = ["PRODUCTION", "AliasRecord", "EventRecord", "StateStore", "VersionRecord"]
