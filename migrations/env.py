"""Alembic environment of the crmse registry. The engine comes from crmse (``config.attributes``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from crmse_cli.registry.tables import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    shared = config.attributes.get("connection")
    if shared is not None:  # crmse's upgrade(): it holds the lock and commits
        _run(shared)
        return
    from crmse_cli.registry.engine import make_engine, migrating

    engine = config.attributes.get("engine")
    if engine is None:
        engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection, migrating(connection):
        _run(connection)


run_migrations_online()
