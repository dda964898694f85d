"""SQLAlchemy 2.0 models of the registry: datasets, runs, checkpoints, metrics, artifacts, sweeps.

The schema is owned by the Alembic migrations in ``migrations/``; a test checks that a database
migrated to head has no autogenerate difference from these models. Timestamps are UTC. Every
constraint and index is named by :data:`NAMING_CONVENTION` (batch migrations on SQLite need the
names); run kinds and statuses are check constraints (``ck_runs_kind``, ``ck_runs_status``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crmse_cli.config import JsonDict
from crmse_cli.registry.entities import RUN_KINDS, STATUSES

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint and index names (Alembic's recommended convention); migration 0003 applied it."""


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """The declarative base of the registry's tables (its metadata is what migrations describe)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DatasetRow(Base):
    """A registered dataset: its file, checksum, shape, species, units and split sizes."""

    __tablename__ = "datasets"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    n_frames: Mapped[int] = mapped_column(Integer)
    n_atoms: Mapped[int] = mapped_column(Integer)
    species: Mapped[list[int]] = mapped_column(JSON)
    units: Mapped[JsonDict] = mapped_column(JSON)
    splits: Mapped[JsonDict] = mapped_column(JSON)
    meta: Mapped[JsonDict] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(DateTime)


class RunRow(Base):
    """One run of a stage: kind, status, config (with its hash), lineage and provenance."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(_one_of("kind", RUN_KINDS), name="kind"),
        CheckConstraint(_one_of("status", STATUSES), name="status"),
    )

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16))
    dataset: Mapped[str | None] = mapped_column(String(128))
    parent: Mapped[str | None] = mapped_column(ForeignKey("runs.id"), index=True)
    config: Mapped[JsonDict] = mapped_column(JSON)
    config_hash: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(32))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int | None] = mapped_column(Integer)  # process that runs it (revision 0002)
    started: Mapped[datetime] = mapped_column(DateTime)
    ended: Mapped[datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)


class CheckpointRow(Base):
    """A checkpoint file of a run, tagged ``best``, ``last`` or ``final``."""

    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    step: Mapped[int] = mapped_column(Integer)
    format_version: Mapped[int] = mapped_column(Integer)
    tag: Mapped[str] = mapped_column(String(32))
    created: Mapped[datetime] = mapped_column(DateTime)


class MetricRow(Base):
    """One metric value of a run, with its unit, optional step and split."""

    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_run_name_step", "run_id", "name", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(32))
    step: Mapped[int | None] = mapped_column(Integer)
    split: Mapped[str | None] = mapped_column(String(16))
    time: Mapped[datetime] = mapped_column(DateTime)


class ArtifactRow(Base):
    """A file a run produced (samples, chains, evaluation arrays, report), with its checksum."""

    __tablename__ = "artifacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    meta: Mapped[JsonDict] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(DateTime)


class SweepRow(Base):
    """A named grid of queued regularize runs (revision 0003)."""

    __tablename__ = "sweeps"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    config: Mapped[JsonDict] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(DateTime)


class SweepJobRow(Base):
    """One queued run of a sweep and its lease: state queued|running|done|failed (revision 0003)."""

    __tablename__ = "sweep_jobs"
    __table_args__ = (Index("ix_sweep_jobs_sweep_state", "sweep", "state", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sweep: Mapped[str] = mapped_column(ForeignKey("sweeps.name"))
    position: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), unique=True)
    params: Mapped[JsonDict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    owner_host: Mapped[str | None] = mapped_column(String(200))
    owner_pid: Mapped[int | None] = mapped_column(Integer)
    heartbeat: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
