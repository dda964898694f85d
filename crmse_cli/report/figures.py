"""Plotly figures of a comparison report: every panel draws the DFT reference beside the runs.

Each function takes a :class:`~crmse_cli.report.collect.ReportData` and returns a
``plotly.graph_objects.Figure`` (or None when no run has the data). The data drawn are the
stored arrays of the ``evaluation`` artifacts and the registry's metric rows, unchanged, except
the energy histograms, which are recomputed on edges shared by every run and the reference.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from crmse_cli.report.collect import ReportData, RunData
from crmse_cli.units import kT

REF_NAME = "DFT reference"
REF_COLOR = "#444444"
PALETTE = qualitative.Plotly
ENERGY_BINS = 60
PAIR_ORDER = ("H-O", "C-O", "C-C", "C-H", "H-H")
"""Element pairs drawn first (one representative pair each); geminal H-H pairs are the ones that
collapse in the spurious minima of MSE-trained models."""
CURVES = (
    ("loss_mse", "L_MSE (energy + force loss)"),
    ("loss_c", "L_C (contrastive loss)"),
    ("chain_ks", "chain-vs-data energy KS"),
    ("resets", "chain resets per update"),
)


@dataclass(frozen=True)
class FigureSpec:
    """A figure with its HTML id, section title and a caption saying how to read it."""

    id: str
    title: str
    caption: str
    figure: go.Figure


def color(i: int) -> str:
    """The ``i``-th colour of the palette (runs are coloured in report order)."""
    return str(PALETTE[i % len(PALETTE)])


def _layout(fig: go.Figure, *, height: int, **kw: Any) -> go.Figure:
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin=dict(l=60, r=160, t=50, b=50),
        # On the right, so it never covers the subplot titles.
        legend=dict(orientation="v", yanchor="top", y=1.0, xanchor="left", x=1.01),
        **kw,
    )
    return fig


def _gaps(y: np.ndarray) -> list[float | None]:
    """Values with non-finite entries as None (a gap in the line)."""
    return [float(v) if math.isfinite(float(v)) else None for v in np.asarray(y, dtype=np.float64)]


def _step(edges: np.ndarray, density: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A histogram as a step line: x = edges, y = density repeated for the last edge."""
    return np.asarray(edges), np.append(density, density[-1] if len(density) else 0.0)


def _centers(edges: np.ndarray) -> np.ndarray:
    e = np.asarray(edges, dtype=np.float64)
    out: np.ndarray = 0.5 * (e[:-1] + e[1:])
    return out


def energy_histograms(
    report: ReportData, bins: int = ENERGY_BINS
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Densities of the DFT reference energies and of each run's sample energies on shared edges.

    The edges span the reference and the 0.1-99.9 percentiles of the samples, so a few exploded
    frames cannot squash the plot while deep spurious minima stay visible.

    Returns:
        ``(edges (bins + 1,) kcal/mol, reference density (bins,), label -> density (bins,))`` in
        1/(kcal/mol); frames outside the edges are not counted.
    """
    ref = np.asarray(report.reference["ref_energies"], dtype=np.float64)
    samples = {r.label: np.asarray(r.arrays["sample_energies"], dtype=np.float64) for r in report.runs}
    samples = {k: v[np.isfinite(v)] for k, v in samples.items()}
    lo, hi = float(ref.min()), float(ref.max())
    for s in samples.values():
        if s.size:
            lo, hi = min(lo, float(np.percentile(s, 0.1))), max(hi, float(np.percentile(s, 99.9)))
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)

    def density(x: np.ndarray) -> np.ndarray:
        counts = np.histogram(x, bins=edges)[0].astype(np.float64)
        out: np.ndarray = counts / (max(x.size, 1) * np.diff(edges))
        return out

    return edges, density(ref), {k: density(v) for k, v in samples.items()}


def energy_figure(report: ReportData) -> go.Figure:
    """Energy densities (1/(kcal/mol)) of every run and the reference on shared bins.

    Energies are shifted by the mean reference energy.
    """
    edges, ref, runs = energy_histograms(report)
    shift = float(np.mean(report.reference["ref_energies"]))
    fig = go.Figure()
    x, y = _step(edges - shift, ref)
    fig.add_trace(go.Scatter(x=x, y=y, name=REF_NAME, line=dict(color=REF_COLOR, shape="hv"), fill="tozeroy"))
    for i, (label, dens) in enumerate(runs.items()):
        x, y = _step(edges - shift, dens)
        fig.add_trace(go.Scatter(x=x, y=y, name=label, line=dict(color=color(i), shape="hv", width=2)))
    fig.update_xaxes(title_text=f"energy - mean DFT reference energy ({shift:.1f}) (kcal/mol)")
    fig.update_yaxes(title_text="density (1/(kcal/mol))")
    return _layout(fig, height=420)


def hr_figure(report: ReportData) -> go.Figure:
    """h(r), the density of all interatomic distances (1/Å), of every run and the reference."""
    ref = report.reference
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=_centers(ref["hr_edges"]), y=ref["hr_ref"], name=REF_NAME, line=dict(color=REF_COLOR, width=3)
        )
    )
    for i, r in enumerate(report.runs):
        fig.add_trace(
            go.Scatter(
                x=_centers(r.arrays["hr_edges"]),
                y=r.arrays["hr_sample"],
                name=r.label,
                line=dict(color=color(i)),
            )
        )
    fig.update_xaxes(title_text="r (Å)")
    fig.update_yaxes(title_text="h(r) (1/Å)")
    return _layout(fig, height=420)


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
    panels = [("min_hh", "closest H-H distance per frame")] if "min_hh_ref" in report.reference else []
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
    x = _centers(edges)
    for k in range(len(titles)):
        row, col = k // cols + 1, k % cols + 1
        if k < len(pairs):
            j = labels.index(pairs[k])
            curves = [(REF_NAME, REF_COLOR, ref["pair_hist_ref"][j])]
            for i, r in enumerate(report.runs):
                run_labels = [str(v) for v in r.arrays["pair_labels"]]
                if pairs[k] in run_labels:
                    curves.append(
                        (r.label, color(i), r.arrays["pair_hist_sample"][run_labels.index(pairs[k])])
                    )
        else:
            key = closest[k - len(pairs)][0]
            curves = [(REF_NAME, REF_COLOR, np.histogram(ref[f"{key}_ref"], bins=edges, density=True)[0])]
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
                    line=dict(color=c, width=3 if name == REF_NAME else 1.5),
                ),
                row=row,
                col=col,
            )
        fig.update_xaxes(title_text="distance (Å)", row=row, col=col)
    fig.update_yaxes(title_text="density (1/Å)", col=1)
    return _layout(fig, height=330 * rows)


def dihedral_names(report: ReportData) -> list[str]:
    """Named torsions present in the reference arrays (stored order)."""
    return [k.split(".", 1)[1] for k in report.reference if k.startswith("dihedral_F_ref.")]


def dihedral_figure(report: ReportData) -> go.Figure | None:
    """Free-energy profiles F(φ) (kcal/mol) of the named torsions; None without torsions."""
    names = dihedral_names(report)
    if not names:
        return None
    ref = report.reference
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[f"{n} torsion" for n in names])
    x = _centers(ref["dihedral_edges"])
    for k, n in enumerate(names):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=_gaps(ref[f"dihedral_F_ref.{n}"]),
                name=REF_NAME,
                legendgroup=REF_NAME,
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
                        y=_gaps(y),
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
    return _layout(fig, height=420)


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
        temp = float(r.metrics.get("sampling_temperature_K", (500.0, "K"))[0])
        if not panels:  # the reference at the first run's sampling temperature
            panels.append((REF_NAME, ref["dihedral2d_ref"], temp))
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
    centers = _centers(ref["dihedral2d_edges"])
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
    return _layout(fig, height=max(380, 340 * rows))


def learning_figure(report: ReportData) -> go.Figure | None:
    """The per-update CRMSE curves of the regularize runs behind the samples; None without any."""
    runs = [(i, r) for i, r in enumerate(report.runs) if r.curves]
    if not runs:
        return None
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t in CURVES], vertical_spacing=0.15)
    for k, (name, _) in enumerate(CURVES):
        row, col = k // 2 + 1, k % 2 + 1
        for i, r in runs:
            if name in r.curves:
                steps, vals = r.curves[name]
                fig.add_trace(
                    go.Scatter(
                        x=steps,
                        y=vals,
                        name=r.label,
                        legendgroup=r.label,
                        showlegend=k == 0,
                        mode="lines+markers",
                        marker=dict(size=4),
                        line=dict(color=color(i)),
                    ),
                    row=row,
                    col=col,
                )
        fig.update_xaxes(title_text="update", row=row, col=col)
    return _layout(fig, height=640)


def survival_figure(report: ReportData) -> go.Figure:
    """Share of replicas still in the physical basin against time (ps; steps for ULA runs)."""
    fig = go.Figure()
    ula = False
    for i, r in enumerate(report.runs):
        t = np.asarray(r.arrays["survival_time_ps"], dtype=np.float64)
        if r.integrator in ("ula", "mala"):
            t, ula = t * 1000.0, True  # ULA has no time: the axis holds steps
        fig.add_trace(
            go.Scatter(
                x=t, y=r.arrays["survival_fraction"], name=r.label, line=dict(color=color(i)), line_shape="hv"
            )
        )
    fig.add_hline(y=1.0, line=dict(color=REF_COLOR, dash="dot"), annotation_text="all replicas physical")
    fig.update_xaxes(title_text="time (ps)" + ("; ULA runs: steps" if ula else ""))
    fig.update_yaxes(title_text="fraction of replicas still physical", range=[0, 1.05])
    return _layout(fig, height=400)


def build_figures(report: ReportData) -> list[FigureSpec]:
    """Every figure of the report, in page order (figures without data are left out)."""
    specs = [
        (
            "energy",
            "Energy distributions",
            "Sample energies (the model's) of every run beside the DFT energies "
            "of the reference frames, on shared bins. A tail to the left is a spurious deep minimum.",
            energy_figure,
        ),
        (
            "hr",
            "Interatomic distances h(r)",
            "Histogram of all interatomic distances of every frame.",
            hr_figure,
        ),
        (
            "pairs",
            "Per-pair distance distributions",
            "One bond of each element pair, a geminal H-H pair and "
            "the closest H-H and closest pair of each frame: collapsed hydrogens show up here.",
            pair_figure,
        ),
        (
            "dihedrals",
            "Dihedral free-energy profiles",
            "F(φ) = -kT ln p(φ) at the sampling temperature, "
            "shifted to a minimum of 0; gaps are bins never visited.",
            dihedral_figure,
        ),
        (
            "dihedral2d",
            "Joint free energy of two torsions",
            "-kT ln p of the first two named torsions at the sampling temperature, per run and for "
            "the DFT reference, shifted to a minimum of 0, on one colour scale; blank bins were never "
            "visited.",
            dihedral2d_figure,
        ),
        (
            "learning",
            "CRMSE learning curves",
            "Per-update rows of the regularize runs behind the samples.",
            learning_figure,
        ),
        (
            "survival",
            "Replica survival",
            "Share of replicas that never left the physical basin "
            "(bond stretched > 0.5 Å or a pair closer than its DFT minimum - 0.3 Å).",
            survival_figure,
        ),
    ]
    out = []
    for fid, title, caption, make in specs:
        fig = make(report)
        if fig is not None:
            out.append(FigureSpec(fid, title, caption, fig))
    from crmse_cli.report.instruments import hessian_spec  # after figures: it imports this module

    hessian = hessian_spec(report)
    return out + ([hessian] if hessian is not None else [])


def run_color(report: ReportData, run: RunData) -> str:
    """The colour of ``run`` in every figure."""
    return color(report.runs.index(run))
