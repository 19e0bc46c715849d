"""Indexes for the async sweeps: unfinished requests by id, finished ones by expiry.

The settle sweep pages through queued/running requests by id, and the expiry and
callback sweeps look at succeeded/failed ones; expired rows stay in the table, so
without the status in front both would scan every request ever made.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_async_requests_status_id", "async_requests", ["status", "id"])
    op.create_index("ix_async_requests_status_expires", "async_requests", ["status", "expires_at"])
    op.drop_index("ix_async_requests_expires", table_name="async_requests")


def downgrade() -> None:
    op.create_index("ix_async_requests_expires", "async_requests", ["expires_at"])
    op.drop_index("ix_async_requests_status_expires", table_name="async_requests")
    op.drop_index("ix_async_requests_status_id", table_name="async_requests")
