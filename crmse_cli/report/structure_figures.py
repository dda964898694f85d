"""Structure panels of the report: h(r), per-pair distances, and torsion free energies.

Each function takes a :class:`~crmse_cli.report.collect.ReportData` and returns a Plotly figure
(or None when no run has the data), drawn from the stored ``evaluation`` arrays unchanged.
"""

from __future__ import annotations

import math
import re

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from crmse_cli import names
from crmse_cli.registry import compat
from crmse_cli.report.collect import ReportData
from crmse_cli.report.plotting import REF_COLOR, bin_centers, color, gaps, layout
from crmse_cli.units import kT

PAIR_ORDER = ("H-O", "C-O", "C-C", "C-H", "H-H")
"""Element pairs drawn first (one representative pair each); geminal H-H pairs are the ones that
collapse in the spurious minima of MSE-trained models."""


def hr_figure(report: ReportData) -> go.Figure:
    """h(r), the density of all interatomic distances (1/Å), of every run and the reference."""
    ref = report.reference
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=bin_centers(ref[names.HR_EDGES]),
            y=ref[names.HR_REF],
            name=report.reference_name,
            line=dict(color=REF_COLOR, width=3),
        )
    )
    for i, r in enumerate(report.runs):
        fig.add_trace(
            go.Scatter(
                x=bin_centers(r.arrays[names.HR_EDGES]),
                y=r.arrays[names.HR_SAMPLE],
                name=r.label,
                line=dict(color=color(i)),
            )
        )
    fig.update_xaxes(title_text="r (Å)")
    fig.update_yaxes(title_text="h(r) (1/Å)")
    return layout(fig, height=420)


def _element_pair(label: str) -> str:
    a, b = (re.sub(r"\d+", "", part) for part in label.split("-", 1))
    return "-".join(sorted((a, b)))


def selected_pairs(labels: list[str]) -> list[str]:
    """One representative pair per element pair (first in the stored order), PAIR_ORDER first."""
    first: dict[str, str] = {}
    for label in labels:
        first.setdefault(_element_pair(label), label)
    order = [k for k in PAIR_ORDER if k in first] + sorted(k for k in first if k not in PAIR_ORDER)
    return [first[k] for k in order]


def _closest_panels(report: ReportData) -> list[tuple[str, str]]:
    panels = [("min_hh", "closest H-H distance per frame")] if names.MIN_HH_REF in report.reference else []
    return panels + [("min_pair", "closest pair distance per frame")]


def pair_figure(report: ReportData) -> go.Figure:
    """Distance densities of selected pairs and of each frame's closest (H-H) pair, Å."""
    ref = report.reference
    labels = [str(x) for x in ref["pair_labels"]]
    pairs = selected_pairs(labels)
    closest = _closest_panels(report)
    kind = {True: "geminal H-H pair", False: "bond"}
    titles = [f"{p} ({kind[_element_pair(p) == 'H-H']})" for p in pairs] + [t for _, t in closest]
    cols = 3
    rows = max(1, math.ceil(len(titles) / cols))
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.07, vertical_spacing=0.12
    )
    edges = np.asarray(ref["pair_edges"])
    x = bin_centers(edges)
    for k in range(len(titles)):
        row, col = k // cols + 1, k % cols + 1
        if k < len(pairs):
            j = labels.index(pairs[k])
            curves = [(report.reference_name, REF_COLOR, ref["pair_hist_ref"][j])]
            for i, r in enumerate(report.runs):
                run_labels = [str(v) for v in r.arrays["pair_labels"]]
                if pairs[k] in run_labels:
                    curves.append(
                        (r.label, color(i), r.arrays["pair_hist_sample"][run_labels.index(pairs[k])])
                    )
        else:
            key = closest[k - len(pairs)][0]
            curves = [
                (
                    report.reference_name,
                    REF_COLOR,
                    np.histogram(ref[f"{key}_ref"], bins=edges, density=True)[0],
                )
            ]
            for i, r in enumerate(report.runs):
                vals = r.arrays.get(f"{key}_sample")
                if vals is not None and len(vals):
                    curves.append((r.label, color(i), np.histogram(vals, bins=edges, density=True)[0]))
        for name, c, y in curves:
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    name=name,
                    legendgroup=name,
                    showlegend=k == 0,
                    line=dict(color=c, width=3 if name == report.reference_name else 1.5),
                ),
                row=row,
                col=col,
            )
        fig.update_xaxes(title_text="distance (Å)", row=row, col=col)
    fig.update_yaxes(title_text="density (1/Å)", col=1)
    return layout(fig, height=330 * rows)


def dihedral_names(report: ReportData) -> list[str]:
    """Named torsions present in the reference arrays (stored order)."""
    return [k.split(".", 1)[1] for k in report.reference if k.startswith("dihedral_F_ref.")]


def _torsion_title(report: ReportData, torsion: str) -> str:
    """``<torsion> torsion``, with the noise floor of its profile error when a run recorded it."""
    key = names.dihedral_profile_floor(torsion)
    floor = next((r.metrics[key][0] for r in report.runs if key in r.metrics), None)
    return f"{torsion} torsion" + ("" if floor is None else f" (floor {floor:.2f} kcal/mol)")


def dihedral_figure(report: ReportData) -> go.Figure | None:
    """Free-energy profiles F(φ) (kcal/mol) of the named torsions; None without torsions."""
    names = dihedral_names(report)
    if not names:
        return None
    ref = report.reference
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[_torsion_title(report, n) for n in names])
    x = bin_centers(ref["dihedral_edges"])
    for k, n in enumerate(names):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=gaps(ref[f"dihedral_F_ref.{n}"]),
                name=report.reference_name,
                legendgroup=report.reference_name,
                showlegend=k == 0,
                line=dict(color=REF_COLOR, width=3),
            ),
            row=1,
            col=k + 1,
        )
        for i, r in enumerate(report.runs):
            y = r.arrays.get(f"dihedral_F_sample.{n}")
            if y is not None:
                fig.add_trace(
                    go.Scatter(
                        x=x,
                        y=gaps(y),
                        name=r.label,
                        legendgroup=r.label,
                        showlegend=k == 0,
                        line=dict(color=color(i)),
                    ),
                    row=1,
                    col=k + 1,
                )
        fig.update_xaxes(title_text="φ (degrees)", range=[-180, 180], dtick=60, row=1, col=k + 1)
    fig.update_yaxes(title_text="F(φ) = -kT ln p(φ) (kcal/mol)", col=1)
    return layout(fig, height=420)


def free_energy_2d(density: np.ndarray, temperature_K: float) -> np.ndarray:
    """-kT ln p of a 2D density, shifted to min 0, kcal/mol; NaN where never visited."""
    d = np.asarray(density, dtype=np.float64)
    with np.errstate(divide="ignore"):
        f = -kT(temperature_K) * np.log(d)
    f[~np.isfinite(f)] = np.nan
    out: np.ndarray = f - np.nanmin(f) if np.isfinite(f).any() else f
    return out


def dihedral2d_figure(report: ReportData) -> go.Figure | None:
    """Joint free energy (kcal/mol) of the first two named torsions; None without them.

    One panel per run and one for the reference.
    """
    ref = report.reference
    if "dihedral2d_ref" not in ref:
        return None
    a, b = (str(x) for x in ref["dihedral2d_names"])
    panels: list[tuple[str, np.ndarray, float]] = []
    for r in report.runs:
        temp = compat.evaluated_temperature_K(r.evaluate.id, r.metrics)
        if not panels:  # the reference at the first run's sampling temperature
            panels.append((report.reference_name, ref["dihedral2d_ref"], temp))
        if "dihedral2d_sample" in r.arrays:
            panels.append((r.label, r.arrays["dihedral2d_sample"], temp))
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[p[0] for p in panels],
        horizontal_spacing=0.05,
        vertical_spacing=0.12,
    )
    centers = bin_centers(ref["dihedral2d_edges"])
    surfaces = [free_energy_2d(dens, temp) for _, dens, temp in panels]
    # One colour scale for every panel, capped at the reference's highest visited level.
    top = float(np.nanmax(surfaces[0])) if np.isfinite(surfaces[0]).any() else 5.0
    for k, f in enumerate(surfaces):
        row, col = k // cols + 1, k % cols + 1
        # density[i_a, i_b]: rows of a heatmap are y, so the transpose puts torsion a on x.
        fig.add_trace(
            go.Heatmap(
                x=centers, y=centers, z=f.T, zmin=0.0, zmax=top, colorscale="Viridis", showscale=k == 0,
                colorbar=dict(title=dict(text="kcal/mol")), hoverongaps=False,
            ),
            row=row, col=col,
        )  # fmt: skip
        fig.update_xaxes(title_text=f"{a} (deg)", row=row, col=col)
    fig.update_yaxes(title_text=f"{b} (deg)", col=1)
    return layout(fig, height=max(380, 340 * rows))
