"""`crmse doctor`: check a workspace without changing it.

Checks, in order: SQLite's ``integrity_check`` of the registry (a damaged file stops the
check there: nothing else in it can be trusted); every registered dataset, checkpoint and
artifact file exists and still has the checksum recorded when it was written; runs marked
``running`` whose process is gone (``crmse runs`` marks those interrupted). Nothing is written,
so it also works on a read-only workspace.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from crmse_cli.fileio import sha256_file
from crmse_cli.registry.engine import integrity_problems, make_engine, masked_url, sqlite_blocker, sqlite_path
from crmse_cli.registry.store import Registry
from crmse_cli.workspace import Workspace

if TYPE_CHECKING:
    from crmse_cli.registry.entities import RunInfo


@dataclass(frozen=True)
class Finding:
    """One problem: ``level`` "error" (data lost or wrong) or "warning" (state to tidy)."""

    level: str
    subject: str  # "registry", "run <id>", "dataset <name>"
    message: str


@dataclass(frozen=True)
class DoctorReport:
    """What ``crmse doctor`` found in a workspace (it changes nothing)."""

    home: Path
    database: str
    findings: list[Finding] = field(default_factory=list)
    runs: int = 0
    files: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing is at the "error" level."""
        return not any(f.level == "error" for f in self.findings)


def doctor(ws: Workspace) -> DoctorReport:
    """Check the workspace ``ws`` (see the module docstring); never writes."""
    db = sqlite_path(ws.db_url)
    where = str(db) if db is not None else masked_url(ws.db_url)
    blocker = ws.blocker() or sqlite_blocker(ws.db_url)  # what every other command refuses
    if blocker is not None:
        return DoctorReport(ws.home, where, [Finding("error", "workspace", blocker)])
    if db is not None and not db.is_file():
        return DoctorReport(ws.home, where, [Finding("warning", "registry", f"no registry at {db} yet")])
    engine = make_engine(ws.db_url, read_only=True)
    try:
        problems = integrity_problems(engine, full=True)
    finally:
        engine.dispose()
    if problems:
        shown = [Finding("error", "registry", p) for p in problems[:5]]
        fix = "restore the database from a backup, or move it away to start an empty registry"
        return DoctorReport(ws.home, where, [*shown, Finding("error", "registry", fix)])

    reg = Registry.open(ws, read_only=True)
    try:
        findings, files = _check_files(reg)
        runs = reg.list_runs()
        findings += _stale_runs(reg, runs)
    finally:
        reg.close()
    return DoctorReport(ws.home, where, findings, runs=len(runs), files=files)


def _check_file(path: str, sha256: str, subject: str, what: str) -> Finding | None:
    if not Path(path).is_file():
        return Finding("error", subject, f"{what} {path} is missing")
    if sha256_file(path) != sha256:
        return Finding("error", subject, f"{what} {path} does not match its recorded checksum")
    return None


def _check_files(reg: Registry) -> tuple[list[Finding], int]:
    findings: list[Finding] = []
    files = 0
    for d in reg.list_datasets():
        files += 1
        found = _check_file(d.path, d.sha256, f"dataset {d.name}", "dataset file")
        findings += [found] if found else []
    for run in reg.list_runs():
        for c in reg.checkpoints(run.id):
            files += 1
            found = _check_file(c.path, c.sha256, f"run {run.id}", f"{c.tag} checkpoint")
            findings += [found] if found else []
        for a in reg.artifacts(run.id):
            files += 1
            found = _check_file(a.path, a.sha256, f"run {run.id}", f"{a.kind} file")
            findings += [found] if found else []
    return findings, files


def _stale_runs(reg: Registry, runs: list[RunInfo]) -> list[Finding]:
    host = socket.gethostname()
    return [
        Finding(
            "warning",
            f"run {r.id}",
            "marked running but its process is gone; `crmse runs` marks it interrupted",
        )
        for r in runs
        if r.status == "running" and r.host == host and r.pid is not None and not reg.owner_alive(r)
    ]


__all__ = ["DoctorReport", "Finding", "doctor"]
