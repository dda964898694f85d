"""The registry: the only code that opens SQLAlchemy sessions. Returns frozen dataclasses.

See docs/architecture.md ("Registry") for the contract. Run ids are 8 hex characters; runs are
addressed by a unique id prefix or a unique name.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crmse_cli.errors import CrmseError, NotFoundError
from crmse_cli.registry._values import jsonable, now, pid_alive, to_info
from crmse_cli.registry.database import new_run_row
from crmse_cli.registry.engine import sqlite_path
from crmse_cli.registry.entities import (
    RUN_KINDS,
    STATUSES,
    ArtifactInfo,
    CheckpointInfo,
    DatasetInfo,
    Metric,
    MetricInfo,
    RunInfo,
)
from crmse_cli.registry.records import RecordStore
from crmse_cli.registry.sweeps import SweepStore
from crmse_cli.registry.tables import RunRow
from crmse_cli.runlock import owner_alive as lock_owner_alive
from crmse_cli.text import check_name
from crmse_cli.workspace import Workspace

log = logging.getLogger(__name__)

T = TypeVar("T")


RESUMABLE_KINDS = ("pretrain", "regularize")


def next_step(kind: str, run_id: str) -> str:
    """What a user does with an interrupted run of ``kind``: resume it, or start it again."""
    if kind in RESUMABLE_KINDS:
        return f"continue it with `crmse {kind} --resume {run_id}`"
    return f"{kind} runs cannot be resumed: run the `crmse {kind}` command again"


def _cannot_write(ws: Workspace) -> bool:
    """Whether this process cannot write the workspace (read-only mount, permissions)."""
    home = Path(ws.home)
    db = sqlite_path(ws.db_url)
    if db is not None and db.exists():
        return not (os.access(db, os.W_OK) and os.access(db.parent, os.W_OK))
    probe = home if home.exists() else home.parent
    return probe.exists() and not os.access(probe, os.W_OK)


class Registry(RecordStore, SweepStore):
    """Datasets, runs, checkpoints, metrics and artifacts of one workspace database."""

    @classmethod
    def open(cls, ws: Workspace, *, read_only: bool = False) -> Registry:
        """The registry of workspace ``ws`` (created and migrated to head if needed).

        Args:
            ws: the workspace.
            read_only: the caller only reads (``runs``, ``show``, ``datasets``). A workspace this
                process cannot write is then opened read-only instead of failing; stale runs are
                not reaped and any write is refused in one line.
        """
        if read_only and _cannot_write(ws):
            if sqlite_path(ws.db_url) is not None and not sqlite_path(ws.db_url).is_file():  # type: ignore[union-attr]
                raise NotFoundError(f"no crmse registry in the read-only workspace {ws.home}; check --home")
            reg = cls(ws.db_url, read_only=True)
        else:
            ws.ensure()
            if _cannot_write(ws):
                raise CrmseError(
                    f"the workspace {ws.home} is read-only here; use --home on a writable folder "
                    "(`crmse runs`, `show` and `datasets` still read it)"
                )
            reg = cls(ws.db_url)
        reg.runs_dir = ws.home / "runs"
        return reg

    # -- runs ----------------------------------------------------------------------------------
    def create_run(
        self,
        *,
        kind: str,
        name: str | None = None,
        dataset: str | None = None,
        parent: str | None = None,
        config: Mapping[str, object],
        seed: int | None,
    ) -> RunInfo:
        """A new run in status ``running``."""
        if kind not in RUN_KINDS:
            raise CrmseError(f"unknown run kind {kind!r}; one of {', '.join(RUN_KINDS)}")
        if name is not None:
            check_name("run name", name)  # no escape sequences onto other users' terminals
        if name is not None and (not name.strip() or all(c in "0123456789abcdef" for c in name)):
            raise CrmseError(
                f"run name {name!r} must not be empty or look like a run id; add a letter beyond a-f"
            )
        cfg = jsonable(config)

        def op(s: Session) -> RunInfo:
            if name is not None and s.scalar(select(RunRow).where(RunRow.name == name)) is not None:
                raise CrmseError(f"a run named {name!r} already exists; pick another --name")
            row = new_run_row(
                kind=kind, name=name, dataset=dataset, parent=parent, config=cfg, seed=seed, status="running"
            )
            s.add(row)
            s.flush()
            return to_info(RunInfo, row)

        try:
            return self._write(op)
        except IntegrityError as exc:
            raise CrmseError(f"could not create the run ({str(exc.orig).splitlines()[0]}); retry") from exc

    def set_status(self, run_id: str, status: str, *, error: str | None = None) -> None:
        """Set a run's status (one of :data:`STATUSES`) and its one-line ``error``.

        Every status but ``running`` records the end time; ``running`` (a resume) makes this process
        the run's owner.
        """
        if status not in STATUSES:
            raise CrmseError(f"unknown run status {status!r}")

        def op(s: Session) -> None:
            row = s.get(RunRow, run_id)
            if row is None:
                raise NotFoundError(f"no run {run_id}")
            row.status = status
            row.error = error
            row.ended = None if status in ("running", "queued") else now()
            if status == "queued":  # back in a sweep's queue: no process owns it
                row.pid = None
            if status == "running":  # resumed: this process owns the run now
                row.host, row.pid = socket.gethostname(), os.getpid()

        self._write(op)

    def get_run(self, ref: str) -> RunInfo:
        """The run whose name is ``ref``, or whose id starts with ``ref``."""
        ref = str(ref).strip()
        with self._session() as s:
            row = s.scalar(select(RunRow).where(RunRow.name == ref))
            if row is not None:
                return to_info(RunInfo, row)
            rows = (
                list(s.scalars(select(RunRow).where(RunRow.id.startswith(ref, autoescape=True))))
                if ref
                else []
            )
        if not rows:
            raise NotFoundError(f"no run {ref!r}; see `crmse runs` for ids and names")
        if len(rows) > 1:
            ids = ", ".join(sorted(r.id for r in rows)[:8])
            raise CrmseError(f"run id prefix {ref!r} is ambiguous ({ids}); give more characters")
        return to_info(RunInfo, rows[0])

    def reap_stale(self) -> list[str]:
        """Mark ``interrupted`` the runs still ``running`` whose process on this host is gone.

        A run killed without a chance to close itself (SIGKILL, power loss, a session cut off)
        would otherwise stay ``running`` forever. Only runs of this host with a recorded pid are
        checked. Returns the ids marked.
        """
        if self.read_only:
            return []
        host = socket.gethostname()
        with self._session() as s:
            rows = s.scalars(select(RunRow).where(RunRow.status == "running", RunRow.host == host)).all()
            stale = [(r.id, r.kind, r.pid) for r in rows if r.pid is not None and not self.owner_alive(r)]
        for run_id, kind, pid in stale:
            self.set_status(
                run_id, "interrupted", error=f"its process (pid {pid}) ended without closing the run; "
                + next_step(kind, run_id),
            )  # fmt: skip
            log.warning("run %s was left running by a process that is gone; marked interrupted", run_id)
        return [run_id for run_id, _, _ in stale]

    def owner_alive(self, row: RunRow | RunInfo) -> bool:
        """The run's lock decides (a reused pid cannot fool it); the pid only for runs without one."""
        alive = lock_owner_alive(self.runs_dir / row.id) if self.runs_dir is not None else None
        if alive is None:  # a run without a lock file: its pid decides (reap_stale checks pid is set)
            return row.pid is None or pid_alive(row.pid)
        return alive

    def list_runs(self, *, kind: str | None = None) -> list[RunInfo]:
        """Every run, oldest first; only those of ``kind`` when given."""
        with self._session() as s:
            q = select(RunRow).order_by(RunRow.started, RunRow.id)
            if kind is not None:
                q = q.where(RunRow.kind == kind)
            return [to_info(RunInfo, r) for r in s.scalars(q)]

    def children(self, run_id: str, *, kind: str | None = None) -> list[RunInfo]:
        """Runs whose parent is ``run_id`` (oldest first)."""
        with self._session() as s:
            q = select(RunRow).where(RunRow.parent == run_id).order_by(RunRow.started, RunRow.id)
            if kind is not None:
                q = q.where(RunRow.kind == kind)
            return [to_info(RunInfo, r) for r in s.scalars(q)]


# The entities stay importable from here (``from crmse_cli.registry.store import RunInfo``).
__all__ = [
    "RUN_KINDS",
    "STATUSES",
    "ArtifactInfo",
    "CheckpointInfo",
    "DatasetInfo",
    "Metric",
    "MetricInfo",
    "Registry",
    "RunInfo",
]
