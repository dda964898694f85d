"""The registry's database: engine, sessions, one-line errors, retried writes.

:class:`Database` is the base of every repository of the registry (``records.RecordStore``,
``sweeps.SweepStore``, ``store.Registry``): the only code that opens SQLAlchemy sessions. The
repositories inherit its typed ``_session`` and ``_write``, so none of them needs the others.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from crmse_cli import __version__
from crmse_cli.errors import CrmseError, DiskFullError
from crmse_cli.registry._values import config_hash, jsonable, now
from crmse_cli.registry.engine import integrity_problems, make_engine, server_error, sqlite_path, upgrade
from crmse_cli.registry.tables import RunRow

T = TypeVar("T")


def new_run_row(
    *,
    kind: str,
    name: str | None,
    dataset: str | None,
    parent: str | None,
    config: Mapping[str, object],
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


class Database:
    """One workspace database: its engine, sessions and writes (see docs/architecture.md)."""

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
