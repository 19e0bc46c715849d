"""Deploys as a persisted state machine: what a deploy asked for, its phase and deadline,
and its progress lines as rows, so any control-plane process can advance it.

Versions left ``deploying`` by a control plane older than this revision have no deploy
to advance: they are marked failed, as the old platform did when it restarted.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deploys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "version_id",
            sa.Integer(),
            sa.ForeignKey("versions.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("promote", sa.Boolean(), nullable=False),
        sa.Column("alias", sa.String(63), nullable=False),
        sa.Column("allow_breaking", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_deploys_phase", "deploys", ["phase"])
    op.create_table(
        "deploy_progress",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "deploy_id",
            sa.Integer(),
            sa.ForeignKey("deploys.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_deploy_progress_deploy", "deploy_progress", ["deploy_id", "id"])
    op.execute(
        "UPDATE versions SET status = 'failed', error = 'the control plane was upgraded while "
        "this version was deploying; deploy it again' WHERE status = 'deploying'"
    )


def downgrade() -> None:
    op.drop_index("ix_deploy_progress_deploy", table_name="deploy_progress")
    op.drop_table("deploy_progress")
    op.drop_index("ix_deploys_phase", table_name="deploys")
    op.drop_table("deploys")
