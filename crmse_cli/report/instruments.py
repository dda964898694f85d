"""The report's "Instruments: repair or softening?" section, from the compared models' diagnose runs.

A compared run whose model has a completed ``diagnose`` child (``crmse diagnose MODEL --against
MSE``) gets a column in a table of its instruments and a line in a figure of the per-mode Hessian
ratios. Nothing here recomputes: the numbers are the diagnose runs' metric rows and the
``diagnosis`` npz, unchanged. No torch here.
"""

from __future__ import annotations

import html

import plotly.graph_objects as go

from crmse_cli.registry import compat
from crmse_cli.report.collect import ReportData
from crmse_cli.report.plotting import FigureSpec, run_color
from crmse_cli.report.rows import Diagnosis

ROWS: tuple[tuple[str, str], ...] = (
    ("hessian_ratio_soft", "Hessian ratio, softest modes (model / MSE; softening: toward T/T_ref)"),
    ("hessian_ratio_stiff", "Hessian ratio, stiffest modes (model / MSE)"),
    ("hessian_ratio_soft_control", "Hessian ratio, softest modes, lambda = 0 control"),
    ("minimum_rmsd_A", "RMSD between the model's and MSE's minima"),
    ("soft_force_slope", "force slope vs DFT on MSE's soft modes"),
    ("soft_force_slope_mse", "force slope vs DFT on soft modes, MSE"),
    ("soft_force_slope_control", "force slope vs DFT on soft modes, control"),
    ("collapse_lift_kT", "median lift of MSE's collapsed frames (repair: many kT)"),
    ("collapse_lift_control_kT", "median lift of collapsed frames, control"),
    ("n_collapsed_frames", "collapsed frames of the MSE samples"),
    ("left_run", "replicas that left (pooled over sample runs)"),
    ("replicas_run", "replicas sampled"),
    ("left_control", "replicas that left, control"),
    ("replicas_control", "replicas sampled, control"),
    ("fisher_p_vs_control", "Fisher p, left vs control"),
    ("left_mse", "replicas that left, MSE"),
    ("fisher_p_vs_mse", "Fisher p, left vs MSE"),
    ("energy_ks_run_vs_mse", "energy KS, model vs MSE samples"),
    ("energy_ks_run_vs_dft", "energy KS, model vs DFT"),
    ("energy_ks_mse_vs_dft", "energy KS, MSE vs DFT"),
)
"""(metric of the diagnose run, row title), in display order."""


def _fmt(v: float) -> str:
    if v != v:
        return "n/a"
    if float(v).is_integer() and abs(v) < 1e7:
        return str(int(v))
    return f"{v:.3g}"


def instruments_section(diagnoses: list[Diagnosis]) -> str:
    """HTML of the section (empty when no compared run was diagnosed)."""
    if not diagnoses:
        return ""
    head = "".join(f"<th>{html.escape(d.label)}</th>" for d in diagnoses)
    body = []
    for key, title in ROWS:
        vals = [d.metrics.get(key) for d in diagnoses]
        if all(v is None for v in vals):
            continue
        unit = next(v[1] for v in vals if v is not None)
        cells = "".join(
            f'<td data-key="{html.escape(key)}">{"—" if v is None else _fmt(v[0])}</td>' for v in vals
        )
        body.append(f"<tr><th>{html.escape(title)}</th><td>{html.escape(unit)}</td>{cells}</tr>")
    against = ", ".join(
        html.escape(f"{d.label}: diagnose run {d.run.id} against {_against(d)}")
        for d in diagnoses
    )
    return (
        '<section id="instruments"><h2>Instruments: repair or softening?</h2>'
        '<p class="caption">From <code>crmse diagnose</code> (' + against + "). Repair raises the MSE "
        "model's collapsed geometries by many kT and leaves the curvature at the minimum (ratios ~1) "
        "and the soft-mode force slopes unchanged; softening lowers the soft-mode ratios toward "
        "T_model / T_reference.</p>"
        f'<table id="instruments-table"><thead><tr><th>instrument</th><th>unit</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></section>"
    )


def hessian_ratio_figure(diagnoses: list[Diagnosis], colors: dict[str, str]) -> go.Figure | None:
    """Per-mode curvature ratio (model / MSE) against the MSE eigenvalue, one line per diagnosed run."""
    drawn = [d for d in diagnoses if "ratios" in d.arrays and "eigenvalues_mse" in d.arrays]
    if not drawn:
        return None
    fig = go.Figure()
    for d in drawn:
        fig.add_trace(
            go.Scatter(
                x=d.arrays["eigenvalues_mse"],
                y=d.arrays["ratios"],
                name=d.label,
                mode="lines+markers",
                line=dict(color=colors.get(d.label)),
            )
        )
        if "ratios_control" in d.arrays:
            fig.add_trace(
                go.Scatter(
                    x=d.arrays["eigenvalues_mse"],
                    y=d.arrays["ratios_control"],
                    name=f"{d.label}: lambda = 0 control",
                    mode="lines+markers",
                    line=dict(color=colors.get(d.label), dash="dot"),
                )
            )
    fig.add_hline(y=1.0, line=dict(color="#444444", dash="dot"), annotation_text="unchanged")
    unit = next(
        (d.metrics["softest_eigenvalue_mse"][1] for d in drawn if "softest_eigenvalue_mse" in d.metrics), ""
    )
    fig.update_xaxes(title_text=f"MSE eigenvalue ({unit})", type="log")
    fig.update_yaxes(title_text="curvature ratio, model / MSE")
    fig.update_layout(template="plotly_white", height=420, margin=dict(l=60, r=160, t=50, b=50))
    return fig


def hessian_spec(report: ReportData) -> FigureSpec | None:
    """The per-mode Hessian-ratio figure of the report (None without diagnosed runs)."""
    colors = {r.label: run_color(report, r) for r in report.runs}
    fig = hessian_ratio_figure(report.diagnoses, colors)
    if fig is None:
        return None
    caption = (
        "crmse diagnose: the model's curvature along each eigenvector of the MSE model's Hessian at its "
        "minimum, divided by MSE's eigenvalue (rigid-body modes removed). Repair keeps every ratio near 1; "
        "softening drives the soft modes (left) toward T_model / T_reference."
    )
    return FigureSpec("hessian", "Curvature at the minimum, mode by mode", caption, fig)


def _against(d: Diagnosis) -> str:
    """The model run a diagnose run compared with (every diagnose run records it)."""
    return str(compat.required(f"diagnose run {d.run.id}'s config", d.run.config, "against"))
