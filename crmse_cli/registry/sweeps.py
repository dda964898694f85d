"""Sweeps in the registry: a named grid of queued runs and the leases of the workers that drain it.

A sweep is one ``sweeps`` row (its settings) and one ``sweep_jobs`` row per grid point, each
linked to a ``regularize`` run created in status ``queued``. A worker claims the next queued job
with a row lock (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL; a ``BEGIN IMMEDIATE``
transaction on SQLite, which locks the whole file for writers) and owns it through a lease: its
host name, pid and a heartbeat it refreshes. A lease of this host is dead exactly when its pid is
gone (a live local worker keeps its job however old its heartbeat: a busy machine can delay a
beat, and taking a live job would run the point twice); a lease of another host, or one without a
pid, is dead when its heartbeat is older than ``stale_after_s``.
:meth:`SweepStore.requeue_dead_jobs` then marks the job's unfinished runs ``interrupted`` and
puts the job back in the queue, where the next worker resumes it.

A repository over :class:`crmse_cli.registry.database.Database` (its typed sessions and writes)
and a base of :class:`crmse_cli.registry.store.Registry`.
Job states: ``queued``, ``running``, ``done``, ``failed``.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, Connection, select, update
from sqlalchemy.exc import DBAPIError

from crmse_cli.config import JsonDict
from crmse_cli.errors import CrmseError, NotFoundError
from crmse_cli.registry._values import config_hash, jsonable, now, pid_alive, to_info
from crmse_cli.registry.database import Database, new_run_row
from crmse_cli.registry.entities import RunInfo
from crmse_cli.registry.tables import RunRow, SweepJobRow, SweepRow
from crmse_cli.text import check_name

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

JOB_STATES = ("queued", "running", "done", "failed")


@dataclass(frozen=True)
class SweepInfo:
    """A sweep (a frozen copy of its row): name, grid settings, creation time (UTC)."""

    name: str
    config: JsonDict
    created: datetime


@dataclass(frozen=True)
class SweepJobInfo:
    """One grid point of a sweep and its lease (a frozen copy of its row)."""

    id: int
    sweep: str
    position: int
    run_id: str
    params: JsonDict
    state: str
    owner_host: str | None
    owner_pid: int | None
    heartbeat: datetime | None
    attempts: int
    error: str | None


def _job(row: object) -> SweepJobInfo:
    return to_info(SweepJobInfo, row)


def _owner() -> tuple[str, int]:
    return socket.gethostname(), os.getpid()


def lease_dead(job: SweepJobInfo, *, host: str, stale: datetime) -> bool:
    """Whether the worker holding running ``job`` is gone (see the module docstring).

    Args:
        job: a running job.
        host: this machine's host name.
        stale: heartbeats older than this (UTC) are dead, for leases of other hosts.
    """
    if job.owner_host == host and job.owner_pid is not None:
        return not pid_alive(job.owner_pid)  # this host can tell for sure: never by the clock
    return job.heartbeat is None or job.heartbeat < stale


def _own_lease(job_id: int) -> tuple[ColumnElement[bool], ...]:
    """The conditions of job ``job_id`` running under this process's lease (host and pid)."""
    host, pid = _owner()
    return (
        SweepJobRow.id == job_id,
        SweepJobRow.state == "running",
        SweepJobRow.owner_host == host,
        SweepJobRow.owner_pid == pid,
    )


@dataclass(frozen=True)
class QueuedJob:
    """One grid point of a new sweep: the ``regularize`` run it queues.

    Attributes:
        name: the run's unique name.
        parent: the source model run's id (None: none).
        seed: the run's seed.
        config: the run's config until a worker starts it.
        params: the grid point, e.g. ``{"source": ..., "lambda": ..., "seed": ...}``.
        dataset: the source's dataset.
    """

    name: str
    parent: str | None
    seed: int | None
    config: Mapping[str, object]
    params: Mapping[str, object]
    dataset: str | None = None


class SweepStore(Database):
    """Registry methods of sweeps (a base of ``Registry``; see the module docstring)."""

    def create_sweep(
        self, *, name: str, config: Mapping[str, object], jobs: Sequence[QueuedJob]
    ) -> SweepInfo:
        """Register sweep ``name`` and queue one ``regularize`` run per entry of ``jobs``.

        Everything is written in one transaction: a clash leaves nothing behind.
        """
        check_name("sweep name", name)
        for job in jobs:
            check_name("run name", job.name)

        def op(s: Session) -> SweepInfo:
            if s.get(SweepRow, name) is not None:
                raise CrmseError(f"a sweep named {name!r} already exists; pick another --name")
            names = [j.name for j in jobs]
            taken = s.scalars(select(RunRow.name).where(RunRow.name.in_(names))).all()
            if taken:
                raise CrmseError(f"run name {taken[0]!r} already exists; pick another sweep --name")
            row = SweepRow(name=name, config=jsonable(config), created=now())
            s.add(row)
            s.flush()
            for pos, j in enumerate(jobs):
                run = new_run_row(
                    kind="regularize",
                    name=j.name,
                    dataset=j.dataset,
                    parent=j.parent,
                    config=j.config,
                    seed=j.seed,
                    status="queued",
                )
                s.add(run)
                s.flush()
                s.add(
                    SweepJobRow(
                        sweep=name,
                        position=pos,
                        run_id=run.id,
                        params=jsonable(j.params),
                        state="queued",
                        attempts=0,
                    )
                )
            return SweepInfo(row.name, row.config, row.created)

        result: SweepInfo = self._write(op)
        return result

    def get_sweep(self, name: str) -> SweepInfo:
        """Sweep ``name``; NotFoundError when there is none."""
        with self._session() as s:
            row = s.get(SweepRow, name)
            if row is None:
                raise NotFoundError(f"no sweep {name!r}; see `crmse sweep list`")
            return SweepInfo(row.name, row.config, row.created)

    def list_sweeps(self) -> list[SweepInfo]:
        """Every sweep, oldest first."""
        with self._session() as s:
            rows = s.scalars(select(SweepRow).order_by(SweepRow.created, SweepRow.name)).all()
            return [SweepInfo(r.name, r.config, r.created) for r in rows]

    def sweep_jobs(self, name: str) -> list[SweepJobInfo]:
        """The jobs of sweep ``name`` in grid order."""
        self.get_sweep(name)
        with self._session() as s:
            q = select(SweepJobRow).where(SweepJobRow.sweep == name).order_by(SweepJobRow.position)
            return [_job(r) for r in s.scalars(q)]

    def claim_job(self, name: str) -> SweepJobInfo | None:
        """Take the next queued job of sweep ``name`` for this process, or None when none is left.

        PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` (workers never wait on each other).
        SQLite: the select and the update run in one ``BEGIN IMMEDIATE`` transaction.
        """
        host, pid = _owner()

        for attempt in range(20):
            try:
                with self.engine.connect() as conn:
                    got = self._claim(conn, name, host, pid, now())
                    conn.commit()
                    return got
            except Exception as exc:  # SQLite: the busy timeout ran out under heavy contention
                if "locked" not in str(exc).lower() or attempt == 19:
                    error = self._translate(exc) if isinstance(exc, DBAPIError) else None
                    if error is not None:  # a server gone away, a full disk: one line
                        raise error from exc
                    raise
                time.sleep(0.05 * (attempt + 1))
        return None  # pragma: no cover

    @staticmethod
    def _claim(conn: Connection, name: str, host: str, pid: int, now: datetime) -> SweepJobInfo | None:
        q = (
            select(SweepJobRow)
            .where(SweepJobRow.sweep == name, SweepJobRow.state == "queued")
            .order_by(SweepJobRow.position)
            .limit(1)
        )
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            q = q.with_for_update(skip_locked=True)
        row = conn.execute(q).first()
        if row is None:
            return None
        conn.execute(
            update(SweepJobRow)
            .where(SweepJobRow.id == row.id)
            .values(
                state="running",
                owner_host=host,
                owner_pid=pid,
                heartbeat=now,
                attempts=SweepJobRow.attempts + 1,
                error=None,
            )
        )
        got = conn.execute(select(SweepJobRow).where(SweepJobRow.id == row.id)).first()
        return _job(got)

    def heartbeat_job(self, job_id: int) -> bool:
        """Refresh this process's lease on job ``job_id``; False when it no longer owns it."""
        lease = _own_lease(job_id)

        def op(s: Session) -> bool:
            res = s.execute(update(SweepJobRow).where(*lease).values(heartbeat=now()))
            return bool(getattr(res, "rowcount", 0))

        owned: bool = self._write(op)
        return owned

    def finish_job(self, job_id: int, state: str, *, error: str | None = None) -> bool:
        """End this process's lease: ``done``, ``failed`` or back to ``queued``; False if not its own."""
        if state not in ("done", "failed", "queued"):
            raise CrmseError(f"a job cannot end in state {state!r}")
        lease = _own_lease(job_id)

        def op(s: Session) -> bool:
            res = s.execute(
                update(SweepJobRow)
                .where(*lease)
                .values(state=state, error=error, owner_host=None, owner_pid=None, heartbeat=None)
            )
            return bool(getattr(res, "rowcount", 0))

        done: bool = self._write(op)
        return done

    def requeue_failed_jobs(self, name: str) -> list[SweepJobInfo]:
        """Put the ``failed`` jobs of sweep ``name`` back in the queue (after a fix); returns them."""

        def op(s: Session) -> list[SweepJobInfo]:
            q = select(SweepJobRow).where(SweepJobRow.sweep == name, SweepJobRow.state == "failed")
            rows = list(s.scalars(q.with_for_update()))
            for row in rows:
                row.state = "queued"
            s.flush()
            return [_job(r) for r in rows]

        self.get_sweep(name)
        jobs: list[SweepJobInfo] = self._write(op)
        return jobs

    def requeue_dead_jobs(self, name: str, *, stale_after_s: float) -> list[SweepJobInfo]:
        """Put back in the queue the running jobs of sweep ``name`` whose worker is gone.

        Dead (:func:`lease_dead`): the lease's host is this host and its pid no longer exists;
        or the lease is another host's (or has no pid) and its heartbeat is older than
        ``stale_after_s``. The job's runs still ``running`` (the regularize run and its
        sample/evaluate children) are marked ``interrupted``. Returns the jobs requeued.
        """
        host = socket.gethostname()
        at = now()
        stale = at - timedelta(seconds=stale_after_s)
        running = [j for j in self.sweep_jobs(name) if j.state == "running"]
        dead = [j for j in running if lease_dead(j, host=host, stale=stale)]
        out = []
        for j in dead:
            why = f"its worker (pid {j.owner_pid} on {j.owner_host}) stopped; re-queued for another worker"

            def op(s: Session, j: SweepJobInfo = j, why: str = why) -> bool:
                res = s.execute(
                    update(SweepJobRow)
                    .where(
                        SweepJobRow.id == j.id,
                        SweepJobRow.state == "running",
                        SweepJobRow.owner_host == j.owner_host,
                        SweepJobRow.owner_pid == j.owner_pid,
                    )
                    .values(state="queued", owner_host=None, owner_pid=None, heartbeat=None, error=why)
                )
                if not getattr(res, "rowcount", 0):
                    return False  # another worker requeued it first
                ids = [j.run_id]
                ids += list(s.scalars(select(RunRow.id).where(RunRow.parent == j.run_id)))
                ids += list(s.scalars(select(RunRow.id).where(RunRow.parent.in_(ids[1:]))))
                s.execute(
                    update(RunRow)
                    .where(RunRow.id.in_(ids), RunRow.status == "running")
                    .values(status="interrupted", ended=at, error=why)
                )
                return True

            if self._write(op):
                out.append(j)
        return out

    def start_queued_run(
        self,
        run_id: str,
        *,
        kind: str,
        config: Mapping[str, object],
        dataset: str | None = None,
        parent: str | None = None,
        seed: int | None = None,
        name: str | None = None,
    ) -> RunInfo:
        """Turn queued run ``run_id`` into a running run of this process with the stage's config.

        Takes the arguments of ``create_run`` (``name`` is ignored: the queued run keeps its own).
        The queued config's ``sweep`` entry is kept. Returns the RunInfo.
        """
        host, pid = _owner()

        def op(s: Session) -> RunInfo:
            row = s.get(RunRow, run_id)
            if row is None:
                raise NotFoundError(f"no run {run_id}")
            if row.status != "queued" or row.kind != kind:
                raise CrmseError(f"run {run_id} is a {row.status} {row.kind} run, not a queued {kind} run")
            cfg = jsonable(config)
            if "sweep" in row.config:
                cfg["sweep"] = row.config["sweep"]
            row.config, row.config_hash = cfg, config_hash(cfg)
            row.dataset, row.parent, row.seed = dataset, parent, seed
            row.status, row.host, row.pid, row.started, row.ended, row.error = (
                "running",
                host,
                pid,
                now(),
                None,
                None,
            )
            s.flush()
            return to_info(RunInfo, row)

        info: RunInfo = self._write(op)
        return info
