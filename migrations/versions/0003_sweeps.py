"""Sweeps: a named grid of queued regularize runs, drained by workers (``crmse sweep``).

``sweeps`` holds the grid's settings; ``sweep_jobs`` one row per queued run with its lease (the
worker's host and pid and a heartbeat). Runs may now be ``queued``: the status column has no
constraint, the allowed values are checked in ``Registry``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "sweep_jobs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("sweep", sa.String(200), sa.ForeignKey("sweeps.name"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(16), sa.ForeignKey("runs.id"), nullable=False, unique=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner_host", sa.String(200), nullable=True),
        sa.Column("owner_pid", sa.Integer(), nullable=True),
        sa.Column("heartbeat", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_sweep_jobs_sweep_state", "sweep_jobs", ["sweep", "state", "position"])


def downgrade() -> None:
    op.drop_index("ix_sweep_jobs_sweep_state", table_name="sweep_jobs")
    op.drop_table("sweep_jobs")
    op.drop_table("sweeps")
