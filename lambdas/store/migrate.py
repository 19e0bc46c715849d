"""Runs the store's Alembic migrations programmatically (no alembic.ini needed).

``upgrade`` is safe to run from many processes at once (every Lambda cold start does):
it migrates in one transaction that first takes a lock, a PostgreSQL advisory lock held
until commit, or SQLite's write lock (``BEGIN IMMEDIATE``). Whoever comes second waits,
then finds the schema at head. A database at a revision these scripts do not know was
migrated by a newer control plane: it is refused (``SchemaAheadError``), never touched.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from flowhost.errors import FlowhostError

__all__ = ["MIGRATION_LOCK", "SchemaAheadError", "alembic_config", "head", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x666C6F77686F7374  # pg_advisory_xact_lock key: "flowhost" in ASCII


class SchemaAheadError(FlowhostError):
    """The state DB was migrated by a newer control plane than this one."""

    code = "state_db_ahead"
    status = 503


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def head() -> str:
    """The newest revision this code's migrations know."""
    found = _scripts().get_current_head()
    assert found is not None  # the package ships its migrations
    return found


def safe_url(engine: Engine) -> str:
    """The engine's URL without its password (for messages and logs)."""
    return engine.url._replace(password=None).render_as_string(hide_password=False)


def check_not_ahead(connection: Connection, engine: Engine) -> None:
    """``SchemaAheadError`` if the database is at a revision these scripts do not know."""
    known = {s.revision for s in _scripts().walk_revisions()}
    for current in MigrationContext.configure(connection).get_current_heads():
        if current not in known:
            raise SchemaAheadError(
                f"state DB {safe_url(engine)}: at revision {current}, newer than this control "
                f"plane knows (head {head()}). Deploy the newer platform (pulumi up) or "
                "restore the DB."
            )


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` under the migration lock."""
    with engine.begin() as connection:  # SQLite: BEGIN IMMEDIATE, the write lock
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        check_not_ahead(connection, engine)
        command.upgrade(alembic_config(connection), revision)
