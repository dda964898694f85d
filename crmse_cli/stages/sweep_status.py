"""Reading a sweep: where its grid points stand, their finished metrics, and the plateau report.

The write side (creating a sweep, the workers) is :mod:`crmse_cli.stages.sweep`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from crmse_cli.errors import CrmseError
from crmse_cli.fileio import atomic_write
from crmse_cli.registry.store import Registry
from crmse_cli.stages.sweep import GridPoint, completed_run
from crmse_cli.workspace import Workspace

if TYPE_CHECKING:
    from crmse_cli.report.sweep import SweepPoint


@dataclass(frozen=True)
class JobStatus:
    """One grid point of a sweep: its runs, where it stands and who works on it."""

    position: int
    source: str
    lambda_: float
    seed: int
    state: str  # job state: queued | running | done | failed
    stage: str  # regularize | sample | evaluate | done
    run_id: str
    run_name: str | None
    run_status: str
    sample_run: str | None
    evaluate_run: str | None
    attempts: int
    owner: str | None
    error: str | None


def sweep_status(ws: Workspace, name: str, *, registry: Registry | None = None) -> list[JobStatus]:
    """Where every grid point of sweep ``name`` stands (grid order)."""
    reg = registry or Registry.open(ws, read_only=True)  # only reads: a read-only workspace too
    out = []
    for job in reg.sweep_jobs(name):
        run = reg.get_run(job.run_id)
        smp = completed_run(reg.children(run.id, kind="sample"))
        ev = completed_run(reg.children(smp.id, kind="evaluate")) if smp else None
        stage = (
            "done" if ev else "evaluate" if smp else "sample" if run.status == "completed" else "regularize"
        )
        owner = f"{job.owner_host}:{job.owner_pid}" if job.owner_host else None
        point = GridPoint.of(name, job)
        source, lambda_, seed = point.source, point.lambda_, point.seed
        out.append(
            JobStatus(
                position=job.position,
                source=source,
                lambda_=lambda_,
                seed=seed,
                state=job.state,
                stage=stage,
                run_id=run.id,
                run_name=run.name,
                run_status=run.status,
                sample_run=smp.id if smp else None,
                evaluate_run=ev.id if ev else None,
                attempts=job.attempts,
                owner=owner,
                error=job.error or run.error,
            )
        )
    return out


@dataclass(frozen=True)
class SweepSummary:
    """One sweep as ``sweep list`` shows it: name, created (UTC, minutes) and its jobs per state."""

    name: str
    created: str
    done: int
    running: int
    queued: int
    failed: int


def list_sweeps(ws: Workspace, *, registry: Registry | None = None) -> list[SweepSummary]:
    """Every sweep: name, created (UTC) and the number of jobs per state."""
    reg = registry or Registry.open(ws, read_only=True)  # only reads: a read-only workspace too
    out = []
    for s in reg.list_sweeps():
        states = [j.state for j in reg.sweep_jobs(s.name)]
        out.append(
            SweepSummary(
                name=s.name,
                created=s.created.strftime("%Y-%m-%d %H:%M"),
                done=states.count("done"),
                running=states.count("running"),
                queued=states.count("queued"),
                failed=states.count("failed"),
            )
        )
    return out


def sweep_points(ws: Workspace, name: str, *, registry: Registry | None = None) -> list[SweepPoint]:
    """The finished grid points of sweep ``name``: source, lambda, seed, run ids and metrics.

    ``metrics`` maps a name to (value, unit): the evaluate run's final metrics (test accuracy,
    distribution metrics, the sample's stability counts), plus every regularize metric whose
    name holds ``grad`` and ``ratio`` (the contrastive/MSE gradient ratio, when the trainer logs
    it), averaged over updates.
    """
    reg = registry or Registry.open(ws, read_only=True)  # only reads: a read-only workspace too
    points: list[SweepPoint] = []
    for st in sweep_status(ws, name, registry=reg):
        if st.evaluate_run is None:
            continue
        metrics = {k: (m.value, m.unit) for k, m in reg.final_metrics(st.evaluate_run).items()}
        rows: dict[str, list[float]] = {}
        units: dict[str, str] = {}
        for m in reg.metrics(st.run_id):
            if "grad" in m.name and "ratio" in m.name and m.step is not None:
                rows.setdefault(m.name, []).append(m.value)
                units[m.name] = m.unit
        metrics.update({k: (sum(v) / len(v), units[k]) for k, v in rows.items()})
        points.append(
            {
                "source": st.source,
                "lambda": st.lambda_,
                "seed": st.seed,
                "run": st.run_id,
                "evaluate_run": st.evaluate_run,
                "metrics": metrics,
            }
        )
    return points


def write_report(
    ws: Workspace, name: str, out: Path | str, *, registry: Registry | None = None
) -> tuple[Path, str]:
    """Write sweep ``name``'s plateau report (one offline HTML page) to ``out``.

    Returns (the path, the markdown table of the same numbers). Fails in one line when no grid
    point has finished.
    """
    from crmse_cli.report.sweep import markdown_table, render_page, summarize  # deferred: plotly

    reg = registry or Registry.open(ws, read_only=True)  # only reads: a read-only workspace too
    spec = reg.get_sweep(name)
    points = sweep_points(ws, name, registry=reg)
    if not points:
        raise CrmseError(f"sweep {name!r} has no finished run yet; run `crmse sweep work {name}`")
    labels = {p["source"]: (reg.get_run(p["source"]).name or p["source"]) for p in points}
    summary = summarize(points, labels)
    total = len(reg.sweep_jobs(name))
    path = Path(out)
    page = render_page(name, spec.config, summary, n_jobs=total).encode()

    def write(fh: IO[bytes]) -> None:
        fh.write(page)

    atomic_write(path, write)
    return path, markdown_table(summary)
