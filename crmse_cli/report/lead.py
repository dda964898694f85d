"""The first screen of a comparison report: the answer, then how the replicas failed.

The verdict (replicas that left the basin before and after with Fisher's p, the change of the
force and energy errors by MAE and RMSE, repair or softening from ``crmse diagnose``) is
:func:`crmse_cli.report.verdict.verdict_lines` of the stored metrics, the same lines
``crmse stabilize`` prints. The force-error-against-stability plot puts every compared run on
one trade-off. The failures table lists each replica that left: when, how (collapse or broken
bond), its closest pair at that moment and where the frame lies in the samples file. No torch.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import plotly.graph_objects as go

from crmse_cli import names
from crmse_cli.report.collect import ReportData, RunData
from crmse_cli.report.pareto import TradeoffPoint
from crmse_cli.report.pareto import tradeoff_figure as tradeoff_plot
from crmse_cli.report.rows import Failure
from crmse_cli.report.verdict import Evidence, evidence, verdict_lines
from crmse_cli.train.budget import configured_budget

if TYPE_CHECKING:
    pass

MAX_FAILURE_ROWS = 60
"""Rows of the failures table (the first replicas to leave, over all runs); the rest are counted."""
HOW = {
    "collapse": "collapse: a pair closer than its reference minimum - 0.3 Å",
    "bond": "broken bond: a bond stretched > 0.5 Å",
    "nonfinite": "non-finite positions or energy",
}


def _errors(run: RunData) -> dict[str, float]:
    """Test errors from the model run's own rows first, then the evaluate run's; every other metric."""
    merged = {**{k: v[0] for k, v in run.metrics.items()}, **{k: v[0] for k, v in run.model_metrics.items()}}
    return merged


def _evidence(run: RunData) -> Evidence:
    return evidence({k: v[0] for k, v in run.metrics.items()}, _errors(run))


def verdict_section(report: ReportData) -> str:
    """HTML of the verdict: each run against the first (the baseline), one fact a line."""
    base = report.runs[0]
    diagnoses = {d.label: {k: v[0] for k, v in d.metrics.items()} for d in report.diagnoses}
    blocks = []
    for run in report.runs[1:]:
        lines = verdict_lines(
            _evidence(base),
            _evidence(run),
            diagnosis=diagnoses.get(run.label),
            budget={k: v[0] for k, v in run.model_metrics.items()},
            force_budget=configured_budget(run.target.model.config) if run.target.model is not None else None,
        )
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        title = f"{run.label} against {base.label}"
        blocks.append(f'<div class="callout verdict"><b>{html.escape(title)}</b><ul>{items}</ul></div>')
    if not blocks:  # one run: its own stability
        e = _evidence(base)
        line = f"left the basin: {e.left}/{e.replicas}" if e.left is not None else "not sampled"
        blocks.append(
            f'<div class="callout verdict"><b>{html.escape(base.label)}</b> {html.escape(line)}</div>'
        )
    return (
        '<section id="verdict"><h2>Verdict</h2><p class="caption">Replicas that left the physical basin '
        "(Fisher's exact test); for an MSE polish, which update the force budget picked and its force "
        "change on held-out frames; the change of the test errors (relative, by MAE and RMSE) and, where "
        "<code>crmse diagnose</code> ran, whether the change is a repair or a softening.</p>"
        + "".join(blocks)
        + "</section>"
    )


def tradeoff_figure(report: ReportData) -> go.Figure | None:
    """Each compared run's force MAE (relative to the first run's) against its replicas out.

    The first run is the comparison's baseline (the MSE parent in `crmse compare`); the shaded
    target is at most 2 of 64 replicas out with the force MAE within +10% of it.
    """
    base = _errors(report.runs[0]).get(names.TEST_FORCE_MAE) if report.runs else None
    points = []
    for r in report.runs:
        mae = _errors(r).get(names.TEST_FORCE_MAE)
        left, n = r.metrics.get("n_left"), r.metrics.get("n_replicas")
        if base is None or mae is None or left is None or n is None:
            continue
        points.append(TradeoffPoint(r.label, 0, mae / base - 1, int(left[0]), int(n[0])))
    return tradeoff_plot(points, seeds=False) if points else None


def _fmt(v: float, digits: str = ".3g") -> str:
    return "n/a" if not math.isfinite(v) else format(v, digits)


def failures_table(failures: list[Failure]) -> str:
    """HTML of the per-replica failures (empty list: a line saying none left)."""
    if not failures:
        none = '<p class="caption">No replica left the basin.</p>'
        return f'<section id="failures"><h2>Failures</h2>{none}</section>'
    shown = sorted(failures, key=lambda f: (f.step, f.label, f.replica))[:MAX_FAILURE_ROWS]
    rows = "".join(
        f"<tr><td>{html.escape(f.label)}</td><td>{f.replica}</td><td>{_fmt(f.time_ps, '.3f')}</td>"
        f"<td>{f.step}</td><td>{html.escape(HOW.get(f.reason, f.reason))}</td><td>{html.escape(f.pair)}</td>"
        f"<td>{_fmt(f.distance_A)}</td>"
        f'<td><a href="{html.escape(Path(f.samples).as_uri())}">{html.escape(Path(f.samples).name)}</a> '
        f"positions[{f.frame}, {f.replica}]</td></tr>"
        for f in shown
    )
    more = len(failures) - len(shown)
    note = f'<p class="caption">and {more} more replicas that left later.</p>' if more > 0 else ""
    return (
        '<section id="failures"><h2>Failures</h2><p class="caption">Each replica that left the physical '
        "basin, first to leave first: when the monitor saw it, how, the closest pair of the last frame "
        "recorded by then, and that frame in the samples file.</p>"
        '<table id="failures-table"><thead><tr><th>run</th><th>replica</th><th>left at (ps)</th>'
        "<th>step</th><th>how</th><th>closest pair</th><th>distance (Å)</th><th>frame</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>{note}</section>"
    )


class FailureRecord(TypedDict):
    """One replica that left, as ``#report-data`` lists it (time in ps; frame: row of the samples)."""

    run: str
    replica: int
    time_ps: float
    reason: str
    frame: int


def failures_data(report: ReportData) -> dict[str, list[FailureRecord]]:
    """The failures, machine-readable, for ``#report-data``."""
    return {
        "failures": [
            {"run": f.label, "replica": f.replica, "time_ps": f.time_ps, "reason": f.reason, "frame": f.frame}
            for f in report.failures
        ]
    }
