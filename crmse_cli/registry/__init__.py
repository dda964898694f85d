"""The run registry (SQLAlchemy + Alembic). Import :class:`Registry` from ``crmse_cli.registry.store``."""
