"""The registry: the only code that opens SQLAlchemy sessions. Returns frozen dataclasses.

See docs/architecture.md ("Registry") for the contract. Run ids are 8 hex characters; runs are
addressed by a unique id prefix or a unique name.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from crmse_cli import __version__
from crmse_cli.errors import CrmseError, DiskFullError, NotFoundError
from crmse_cli.registry._values import config_hash, jsonable, now, pid_alive, to_info
from crmse_cli.registry.engine import integrity_problems, make_engine, server_error, sqlite_path, upgrade
from crmse_cli.registry.entities import (
    RUN_KINDS,
    STATUSES,
    ArtifactInfo,
    CheckpointInfo,
    DatasetInfo,
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


def _cannot_write(ws: Any) -> bool:
    """Whether this process cannot write the workspace (read-only mount, permissions)."""
    home = Path(ws.home)
    db = sqlite_path(ws.db_url)
    if db is not None and db.exists():
        return not (os.access(db, os.W_OK) and os.access(db.parent, os.W_OK))
    probe = home if home.exists() else home.parent
    return probe.exists() and not os.access(probe, os.W_OK)


def _new_run_row(
    *,
    kind: str,
    name: str | None,
    dataset: str | None,
    parent: str | None,
    config: dict[str, Any],
    seed: int | None,
    status: str,
) -> RunRow:
    """A new run row owned by this process (no owner when ``queued``)."""
    cfg = jsonable(config)
    return RunRow(
        id=secrets.token_hex(4),
        name=name,
        kind=kind,
        status=status,
        dataset=dataset,
        parent=parent,
        config=cfg,
        config_hash=config_hash(cfg),
        seed=seed,
        version=__version__,
        host=socket.gethostname(),
        pid=None if status == "queued" else os.getpid(),
        started=now(),
        ended=None,
        error=None,
    )


class Registry(RecordStore, SweepStore):
    """Datasets, runs, checkpoints, metrics and artifacts of one workspace database."""

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        self.url = url
        self.read_only = read_only
        self.runs_dir: Path | None = None  # set by open(): where run folders (and locks) live
        self._checked = False  # integrity checked before the first write (see _write)
        try:
            self.engine = make_engine(url, read_only=read_only)
            upgrade(self.engine, read_only=read_only)
        except DBAPIError as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

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

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except DBAPIError as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from exc

    def _translate(self, exc: DBAPIError) -> CrmseError | None:
        """A one-line error for a database that is corrupt, read-only, full or unreachable.

        None for what callers handle themselves: lock contention (retried) and constraint
        violations.
        """
        if isinstance(exc, IntegrityError):
            return None
        if sqlite_path(self.url) is None:  # a server (PostgreSQL): gone, refused, no such database
            return server_error(exc, self.url)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        low = reason.lower()
        where = sqlite_path(self.url) or "the registry database"
        if "locked" in low or "busy" in low:
            return None
        if "disk is full" in low:  # SQLITE_FULL: "database or disk is full"
            return DiskFullError(where)
        if "readonly" in low or "read-only" in low:
            return CrmseError(f"the registry {where} is read-only ({reason}); use a writable --home")
        if any(word in low for word in ("not a database", "malformed", "corrupt", "disk i/o")):
            return CrmseError(
                f"the registry {where} is damaged ({reason}); run `crmse doctor`, then restore it "
                "from a backup or move it away to start an empty registry"
            )
        if "unable to open" in low:
            return CrmseError(
                f"cannot open the registry {where} ({reason}); check --home and its permissions"
            )
        return CrmseError(f"the registry {where} failed ({reason}); run `crmse doctor`")

    def check_integrity(self, *, full: bool = False) -> list[str]:
        """SQLite's check of the database file: [] when sound (see ``engine.integrity_problems``)."""
        return integrity_problems(self.engine, full=full)

    def _write(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` in one transaction; retry briefly if another process holds the lock.

        Nothing is written to a database that fails SQLite's ``quick_check`` (checked once per
        Registry, before its first write): adding rows to a damaged file hides the damage.
        """
        if self.read_only:
            raise CrmseError(
                f"the workspace of {self.url} is read-only here; use a writable --home to change it"
            )
        if not self._checked:
            problems = self.check_integrity()
            if problems:
                raise CrmseError(
                    f"the registry {sqlite_path(self.url)} is damaged ({problems[0][:160]}); nothing "
                    "was written: run `crmse doctor`, then restore it from a backup or move it away"
                )
            self._checked = True
        for attempt in range(20):
            try:
                with self._session() as session:
                    return fn(session)
            except OperationalError as exc:
                if "locked" not in str(exc).lower() or attempt == 19:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    # -- runs ----------------------------------------------------------------------------------
    def create_run(
        self,
        *,
        kind: str,
        name: str | None = None,
        dataset: str | None = None,
        parent: str | None = None,
        config: dict[str, Any],
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
            row = _new_run_row(
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

        Any status but ``running`` records the end time; ``running`` (a resume) makes this process
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

    def owner_alive(self, row: Any) -> bool:
        """The run's lock decides (a reused pid cannot fool it); the pid only for runs without one."""
        alive = lock_owner_alive(self.runs_dir / row.id) if self.runs_dir is not None else None
        return pid_alive(row.pid) if alive is None else alive

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
    "MetricInfo",
    "Registry",
    "RunInfo",
]
