"""Named constraints everywhere, and run kinds and statuses as check constraints.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

SQLite cannot add a constraint or rename one in place: each table is rebuilt (batch "move and
copy") with the naming convention below, so the primary keys, the unique run name and the
foreign keys get the names the models give them, and ``runs`` gets ``ck_runs_kind`` and
``ck_runs_status``. The caller turns foreign keys off for the rebuild and checks them before
the commit (``crmse_cli.registry.engine.migrating``). Other databases add the two checks in
place and keep their own names for the older constraints.

The lists are frozen here as they were at this revision: a later kind or status is a new
revision, not an edit of this one.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
RUN_KINDS = ("pretrain", "regularize", "sample", "evaluate", "compare", "reproduce", "diagnose")
STATUSES = ("queued", "running", "completed", "failed", "interrupted")
TABLES = ("datasets", "runs", "checkpoints", "metrics", "artifacts", "sweeps", "sweep_jobs")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _recreate() -> str:
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, naming_convention=NAMING_CONVENTION, recreate=_recreate()) as batch:
            if table == "runs":
                batch.create_check_constraint(op.f("ck_runs_kind"), _one_of("kind", RUN_KINDS))
                batch.create_check_constraint(op.f("ck_runs_status"), _one_of("status", STATUSES))


def downgrade() -> None:
    # The constraint names stay (harmless for 0002's code); only the checks go.
    with op.batch_alter_table("runs", naming_convention=NAMING_CONVENTION) as batch:
        batch.drop_constraint(op.f("ck_runs_status"), type_="check")
        batch.drop_constraint(op.f("ck_runs_kind"), type_="check")
