"""The plateau report of a sweep: every metric against lambda, mean and seed spread, one HTML page.

lambda > 0 is drawn on a log axis: each seed as a small marker, the mean over seeds as a line with
error bars of one standard deviation (ddof 1). lambda = 0 (the control) has no place on a log
axis: it is drawn as a dashed line at its mean with a band of +- one standard deviation across
the whole axis. The page is self-contained like the comparison report (plotly.js inline).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import plotly.graph_objects as go

from crmse_cli import names
from crmse_cli.report.html import fmt, page
from crmse_cli.report.plotting import FigureSpec, color

KEY_METRICS = (
    names.TEST_FORCE_MAE,
    names.TEST_ENERGY_MAE,
    names.ENERGY_KS,
    names.HR_MAE,
    "n_left",
    names.STABLE_FRACTION,
    names.SHARE_OUTSIDE_SUPPORT,
)
"""Metrics drawn first, in this order; then every dihedral profile error and gradient-ratio metric.
Titles: :func:`crmse_cli.names.metric_title`."""


SweepPoint = TypedDict(  # functional form: "lambda" is a keyword
    "SweepPoint",
    {
        "source": str,  # the model run the point regularized
        "lambda": float,
        "seed": int,
        "run": str,  # its regularize run
        "evaluate_run": str,
        "metrics": dict[str, tuple[float, str]],  # name -> (value, unit)
    },
)
"""A finished grid point of a sweep (:func:`crmse_cli.stages.sweep_status.sweep_points`)."""


@dataclass(frozen=True)
class Cell:
    """The seeds' values of one metric at one (source, lambda)."""

    values: list[float]

    @property
    def mean(self) -> float:
        """Mean of the seeds' values."""
        return sum(self.values) / len(self.values)

    @property
    def std(self) -> float:
        """Sample standard deviation of the seeds' values (0 with fewer than two)."""
        n = len(self.values)
        if n < 2:
            return 0.0
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (n - 1))


@dataclass(frozen=True)
class SweepSummary:
    """A sweep's table: metrics (key, label, unit) by source and lambda, with the cells."""

    metrics: list[tuple[str, str, str]]  # (key, label, unit)
    sources: list[str]  # labels, in grid order
    lambdas: list[float]  # sorted
    cells: dict[tuple[str, float, str], Cell] = field(default_factory=dict)  # (source, lambda, key)
    seeds: dict[tuple[str, float], list[int]] = field(default_factory=dict)


def _metric_keys(points: Sequence[SweepPoint]) -> list[tuple[str, str, str]]:
    units: dict[str, str] = {}
    for p in points:
        for k, (_, u) in p["metrics"].items():
            units.setdefault(k, u)
    keys = [k for k in KEY_METRICS if k in units]
    keys += [k for k in sorted(units) if k.startswith(names.DIHEDRAL_PROFILE_ERROR + ".")]
    keys += [k for k in sorted(units) if "grad" in k and "ratio" in k]
    return [(k, names.metric_title(k, unit=False), units[k]) for k in keys]


def summarize(points: Sequence[SweepPoint], labels: dict[str, str]) -> SweepSummary:
    """Group finished grid points by (source, lambda); ``labels`` names the source runs."""
    metrics = _metric_keys(points)
    sources = list(dict.fromkeys(labels[p["source"]] for p in points))
    lambdas = sorted({float(p["lambda"]) for p in points})
    values: dict[tuple[str, float, str], list[float]] = {}
    seeds: dict[tuple[str, float], list[int]] = {}
    for p in points:
        src, lam = labels[p["source"]], float(p["lambda"])
        seeds.setdefault((src, lam), []).append(int(p["seed"]))
        for key, _, _ in metrics:
            if key in p["metrics"]:
                values.setdefault((src, lam, key), []).append(float(p["metrics"][key][0]))
    cells = {k: Cell(v) for k, v in values.items()}
    return SweepSummary(metrics, sources, lambdas, cells, seeds)


def metric_figure(
    summary: SweepSummary, key: str, label: str, unit: str, *, lambda_units: str | None = None
) -> go.Figure:
    """One metric against lambda (log axis) per source, with the lambda = 0 control as a band."""
    fig = go.Figure()
    positive = [lam for lam in summary.lambdas if lam > 0]
    x_lo, x_hi = (min(positive) / 3, max(positive) * 3) if positive else (1e-5, 10.0)
    for i, src in enumerate(summary.sources):
        c = color(i)
        control = summary.cells.get((src, 0.0, key))
        if control is not None:
            m, s = control.mean, control.std
            fig.add_trace(
                go.Scatter(
                    x=[x_lo, x_hi, x_hi, x_lo],
                    y=[m - s, m - s, m + s, m + s],
                    fill="toself",
                    mode="none",
                    fillcolor=c,
                    opacity=0.15,
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup=src,
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=[x_lo, x_hi],
                    y=[m, m],
                    mode="lines",
                    line={"color": c, "dash": "dash"},
                    name=f"{src}: λ = 0 control (n={len(control.values)})",
                    legendgroup=src,
                )
            )
        cells = [
            (lam, summary.cells[(src, lam, key)]) for lam in positive if (src, lam, key) in summary.cells
        ]
        if not cells:
            continue
        xs = [lam for lam, cell in cells for _ in cell.values]
        ys = [v for _, cell in cells for v in cell.values]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers",
                marker={"color": c, "size": 6, "opacity": 0.45},
                name=f"{src}: seeds",
                legendgroup=src,
                showlegend=False,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[lam for lam, _ in cells],
                y=[cell.mean for _, cell in cells],
                error_y={"type": "data", "array": [cell.std for _, cell in cells], "visible": True},
                mode="lines+markers",
                line={"color": c},
                marker={"size": 9},
                name=f"{src}: mean ± std over seeds",
                legendgroup=src,
            )
        )
    fig.update_layout(
        height=380,
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 30, "b": 50},
        xaxis={
            "type": "log",
            "title": f"λ{f' ({lambda_units} convention)' if lambda_units else ''} (log axis; λ = 0 dashed)",
            "range": [math.log10(x_lo), math.log10(x_hi)],
        },
        yaxis={"title": f"{label} ({unit})" if unit and unit != "1" else label},
    )
    return fig


def markdown_table(summary: SweepSummary) -> str:
    """Rows (source, lambda), columns the metrics: mean ± std over seeds (n seeds)."""
    head = ["source", "λ", "seeds"] + [
        f"{label} ({unit})" if unit != "1" else label for _, label, unit in summary.metrics
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for src in summary.sources:
        for lam in summary.lambdas:
            if (src, lam) not in summary.seeds:
                continue
            row = [src, f"{lam:g}", str(len(summary.seeds[(src, lam)]))]
            for key, _, _ in summary.metrics:
                cell = summary.cells.get((src, lam, key))
                row.append("—" if cell is None else f"{fmt(cell.mean)} ± {fmt(cell.std)}")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _html_table(summary: SweepSummary) -> str:
    head = "".join(
        f"<th>{html.escape(label)}<br><small>{html.escape(unit)}</small></th>"
        for _, label, unit in summary.metrics
    )
    body = []
    for src in summary.sources:
        for lam in summary.lambdas:
            if (src, lam) not in summary.seeds:
                continue
            cells = []
            for key, _, _ in summary.metrics:
                cell = summary.cells.get((src, lam, key))
                cells.append("<td>—</td>" if cell is None else f"<td>{fmt(cell.mean)} ± {fmt(cell.std)}</td>")
            n = len(summary.seeds[(src, lam)])
            body.append(f"<tr><td>{html.escape(src)}</td><td>{lam:g}</td><td>{n}</td>{''.join(cells)}</tr>")
    head = f"<thead><tr><th>source</th><th>λ</th><th>seeds</th>{head}</tr></thead>"
    return f"<table>{head}<tbody>{''.join(body)}</tbody></table>"


def _table(spec: Mapping[str, object], key: str) -> Mapping[str, object]:
    """The sweep spec's options table ``key`` (empty when it has none)."""
    value = spec.get(key)
    return value if isinstance(value, dict) else {}


def render_page(name: str, spec: Mapping[str, object], summary: SweepSummary, *, n_jobs: int) -> str:
    """The complete page: settings, the table and one figure per metric (``spec``: the sweep's)."""
    units = spec.get("lambda_units")
    figs = [
        FigureSpec(
            f"m{i}",
            label,
            "",
            metric_figure(summary, key, label, unit, lambda_units=units if isinstance(units, str) else None),
        )
        for i, (key, label, unit) in enumerate(summary.metrics)
    ]
    n_done = sum(len(v) for v in summary.seeds.values())
    machine = {
        "sweep": name,
        "spec": spec,
        "metrics": [k for k, _, _ in summary.metrics],
        "figures": [f.id for f in figs],
        "cells": [
            {"source": s, "lambda": lam, "metric": k, "values": c.values}
            for (s, lam, k), c in summary.cells.items()
        ],
    }
    settings = html.escape(
        ", ".join(
            f"{k}={v}"
            for k, v in {**_table(spec, "regularize_options"), **_table(spec, "sample_options")}.items()
        )
        or "defaults"
    )
    lambdas, seeds = html.escape(str(spec.get("lambdas"))), html.escape(str(spec.get("seeds")))
    body = f"""<p class="sub">{n_done} of {n_jobs} grid points finished · λ ∈ {lambdas} ·
seeds {seeds} · options: {settings}</p>
<p class="caption">Mean ± standard deviation over seeds. λ &gt; 0 on a log axis (small markers: single
seeds); the λ = 0 control is the dashed line with its ±1 std band.</p>
{_html_table(summary)}
"""
    return page(html.escape(f"sweep {name}"), body, figs, machine)
