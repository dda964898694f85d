"""Plotly figures of a comparison report: every panel draws the reference beside the runs.

Each function takes a :class:`~crmse_cli.report.collect.ReportData` and returns a
``plotly.graph_objects.Figure`` (or None when no run has the data). The data drawn are the
stored arrays of the ``evaluation`` artifacts and the registry's metric rows, unchanged, except
the energy histograms, which are recomputed on edges shared by every run and the reference.
The structure panels (h(r), pairs, torsions) live in ``structure_figures``, the shared look in
``plotting``; their names stay importable from here.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from crmse_cli import names
from crmse_cli.report.collect import ReportData
from crmse_cli.report.instruments import hessian_spec
from crmse_cli.report.lead import tradeoff_figure
from crmse_cli.report.plotting import REF_COLOR, FigureSpec, color, layout, step_line
from crmse_cli.report.structure_figures import (
    PAIR_ORDER,
    _element_pair,
    dihedral2d_figure,
    dihedral_figure,
    dihedral_names,
    free_energy_2d,
    hr_figure,
    pair_figure,
    selected_pairs,
)

ENERGY_BINS = 60
LEAD_FIGURES = ("survival", "tradeoff")
"""Figures shown on the first screen, right after the verdict."""
CURVES = (
    ("loss_mse", "L_MSE (energy + force loss)"),
    ("loss_c", "L_C (contrastive loss)"),
    ("chain_ks", "chain-vs-data energy KS"),
    ("resets", "chain resets per update"),
)


def energy_histograms(
    report: ReportData, bins: int = ENERGY_BINS
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Densities of the reference energies and of each run's sample energies on shared edges.

    The edges span the reference and the 0.1-99.9 percentiles of the samples, so a few exploded
    frames cannot squash the plot while deep spurious minima stay visible.

    Returns:
        ``(edges (bins + 1,) kcal/mol, reference density (bins,), label -> density (bins,))`` in
        1/(kcal/mol); frames outside the edges are not counted.
    """
    ref = np.asarray(report.reference[names.REF_ENERGIES], dtype=np.float64)
    samples = {r.label: np.asarray(r.arrays[names.SAMPLE_ENERGIES], dtype=np.float64) for r in report.runs}
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
    shift = float(np.mean(report.reference[names.REF_ENERGIES]))
    fig = go.Figure()
    x, y = step_line(edges - shift, ref)
    fig.add_trace(
        go.Scatter(
            x=x, y=y, name=report.reference_name, line=dict(color=REF_COLOR, shape="hv"), fill="tozeroy"
        )
    )
    for i, (label, dens) in enumerate(runs.items()):
        x, y = step_line(edges - shift, dens)
        fig.add_trace(go.Scatter(x=x, y=y, name=label, line=dict(color=color(i), shape="hv", width=2)))
    fig.update_xaxes(title_text=f"energy - mean reference energy ({shift:.1f}) (kcal/mol)")
    fig.update_yaxes(title_text="density (1/(kcal/mol))")
    return layout(fig, height=420)


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
    return layout(fig, height=640)


def survival_figure(report: ReportData) -> go.Figure:
    """Share of replicas still in the physical basin against time (ps; steps for samplers without time)."""
    fig = go.Figure()
    ula = False
    for i, r in enumerate(report.runs):
        t = np.asarray(r.arrays[names.SURVIVAL_TIME_PS], dtype=np.float64)
        if not r.has_time:
            t, ula = t * 1000.0, True  # no physical time (ULA, MALA): the axis holds steps
        fig.add_trace(
            go.Scatter(
                x=t,
                y=r.arrays[names.SURVIVAL_FRACTION],
                name=r.label,
                line=dict(color=color(i)),
                line_shape="hv",
            )
        )
    fig.add_hline(y=1.0, line=dict(color=REF_COLOR, dash="dot"), annotation_text="all replicas physical")
    fig.update_xaxes(title_text="time (ps)" + ("; ULA runs: steps" if ula else ""))
    fig.update_yaxes(title_text="fraction of replicas still physical", range=[0, 1.05])
    return layout(fig, height=400)


def build_figures(report: ReportData) -> list[FigureSpec]:
    """Every figure of the report, in page order (figures without data are left out).

    The answer first (survival, accuracy against stability: :data:`LEAD_FIGURES`), then the
    distributions, the learning curves and the instruments.
    """
    ref = report.reference_short
    specs = [
        (
            "survival",
            "Replica survival",
            "Share of replicas that never left the physical basin "
            "(bond stretched > 0.5 Å or a pair closer than its minimum over the reference frames - 0.3 Å).",
            survival_figure,
        ),
        (
            "tradeoff",
            "Accuracy against stability",
            "Every compared run: its model's test force MAE relative to the first run's (log scale) "
            "against the share of replicas that left the basin. Shaded: at most 2 of 64 out with the "
            "force MAE within +10%; a repair moves down at little cost to the right.",
            tradeoff_figure,
        ),
        (
            "energy",
            "Energy distributions",
            f"Sample energies (the model's) of every run beside the {ref} energies "
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
            f"the reference ({report.reference_name}), shifted to a minimum of 0, on one colour scale; "
            "blank bins were never visited.",
            dihedral2d_figure,
        ),
        (
            "learning",
            "CRMSE learning curves",
            "Per-update rows of the regularize runs behind the samples.",
            learning_figure,
        ),
    ]
    out = []
    for fid, title, caption, make in specs:
        fig = make(report)
        if fig is not None:
            out.append(FigureSpec(fid, title, caption, fig))
    hessian = hessian_spec(report)
    return out + ([hessian] if hessian is not None else [])


__all__ = [
    "CURVES",
    "ENERGY_BINS",
    "PAIR_ORDER",
    "_element_pair",
    "build_figures",
    "color",
    "dihedral2d_figure",
    "dihedral_figure",
    "dihedral_names",
    "energy_figure",
    "energy_histograms",
    "free_energy_2d",
    "hr_figure",
    "learning_figure",
    "pair_figure",
    "selected_pairs",
    "survival_figure",
]
