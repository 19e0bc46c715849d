"""The pinned run that ran an asynchronous request, beside the version that ran it.

Status documents and results name both (``run`` is null until a delivery starts, and
for requests recorded before this revision).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("async_requests", sa.Column("run", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("async_requests") as batch:  # SQLite rebuilds the table
        batch.drop_column("run")
