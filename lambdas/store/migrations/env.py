"""Alembic environment: the connection comes from ``config.attributes['connection']``
(``flowhost.lambdas.store.migrate`` opens it, holding the migration lock)."""

from __future__ import annotations

from alembic import context

from flowhost.lambdas.store.models import Base

config = context.config
connection = config.attributes["connection"]

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
