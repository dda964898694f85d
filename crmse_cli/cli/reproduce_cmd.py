"""`crmse reproduce`: the whole pipeline on one molecule in one command."""

from __future__ import annotations

from pathlib import Path

import typer

from crmse_cli import names
from crmse_cli.cli.common import (
    CompileOption,
    OpenOption,
    console,
    emit_json,
    open_report,
    set_threads,
    state,
    workspace,
)
from crmse_cli.cli.conventions import choice, setting_option
from crmse_cli.cli.tables import metrics_tables
from crmse_cli.config import load_config
from crmse_cli.stages.stabilize_config import StabilizeConfig

PRESET_CHOICES = ("quick", "paper")
"""The presets ``--preset`` lists: the keys of :data:`crmse_cli.stages.reproduce.PRESETS` that are not
hidden (that module imports torch; tests/test_cli_conventions.py checks they agree)."""
HIDDEN_PRESETS = ("tiny",)
"""Presets ``--preset`` takes without listing them (test sizes)."""

HEADLINE = (
    *names.CORE_METRICS,
    names.STABLE_FRACTION,
    names.MEDIAN_LEAVE_TIME_PS,
    names.CONFIG_TEMPERATURE_SAMPLE_K,
    names.CONFIG_TEMPERATURE_REF_K,
)
"""Metrics of the summary table, in display order (titles: :func:`crmse_cli.names.metric_title`);
every torsion's profile error follows the core metrics (:func:`headline`)."""


def headline(metrics: dict[str, dict[str, tuple[float, str]]]) -> list[str]:
    """The summary table's rows: :data:`HEADLINE` with every torsion's profile error after the core metrics.

    The torsions are the evaluate runs' (named by chemistry, e.g. aspirin's ``ester``, or by their
    atoms), in the order the first run recorded them.
    """
    prefix = names.DIHEDRAL_PROFILE_ERROR + "."
    torsions = list(dict.fromkeys(k for m in metrics.values() for k in m if k.startswith(prefix)))
    core = len(names.CORE_METRICS)
    return [*HEADLINE[:core], *torsions, *HEADLINE[core:]]


def floors_line(metrics: dict[str, dict[str, tuple[float, str]]]) -> str | None:
    """``noise floors (reference half vs half): ester 0.21, ... kcal/mol``, or None without torsions."""
    prefix = names.DIHEDRAL_PROFILE_FLOOR + "."
    floors = {
        k[len(prefix) :]: v for m in metrics.values() for k, (v, _) in m.items() if k.startswith(prefix)
    }
    if not floors:
        return None
    shown = ", ".join(f"{t} {v:.2f}" for t, v in floors.items())
    return f"profile noise floors (reference half vs half): {shown} kcal/mol"


def reproduce_command(
    ctx: typer.Context,
    molecule: str = typer.Argument(
        ...,
        help="rMD17 molecule (ethanol, aspirin: the paper's path) or ethanol-xtb, aspirin-xtb (an exact "
        "500 K GFN2-xTB reference generated here: no download).",
    ),
    preset: str = choice(
        PRESET_CHOICES,
        hidden=HIDDEN_PRESETS,
        default="quick",
        help="quick (about 6 min: its CPU time on one core, the wall time of an idle machine; longer "
        "when other jobs share the cores; one seed, not converged) or paper (the paper's sizes).",
    ),
    from_path: Path | None = typer.Option(None, "--from", help="Local rMD17 archive (offline machines)."),
    n_train: int | None = typer.Option(None, help="Training frames (default: the preset's; quick: 200)."),
    seed: int = typer.Option(0, help="Seed of every step."),
    lambda_: float | None = typer.Option(None, "--lambda", help="Contrastive weight (default 0.015)."),
    temperature_K: float | None = typer.Option(
        None, "--temperature-K", help="Sampling temperature (default 500)."
    ),
    recipe: str | None = setting_option(StabilizeConfig, "recipe"),
    force_budget: float | None = setting_option(StabilizeConfig, "force_budget"),
    out: Path | None = typer.Option(None, help="Where to write the HTML report."),
    open_: OpenOption = False,
    processes: int = typer.Option(1, "--processes", help="Worker processes for generating an xTB reference."),
    compile_: CompileOption = None,
) -> None:
    """Fetch -> pretrain -> sample -> CRMSE -> polish -> sample -> evaluate -> diagnose -> compare -> verdict.

    Finished steps are reused. The CRMSE arm is `crmse stabilize`'s recipe: CRMSE, then an MSE
    polish whose length the force budget picks on held-out frames (--recipe crmse: CRMSE alone).
    The last lines are the verdict: that model against the MSE model it started from (replicas
    that left the basin, the polish's pick and force change, test error change, repair or softening).
    """
    from crmse_cli.stages.reproduce import reproduce

    st = state(ctx)
    set_threads(st.threads)
    chosen = load_config(StabilizeConfig, None, recipe=recipe, force_budget=force_budget)  # validated
    res = reproduce(
        workspace(st, compile_=compile_),
        molecule,
        preset=preset,
        from_path=from_path,
        n_train=n_train,
        seed=seed,
        lambda_=lambda_,
        temperature_K=temperature_K,
        out=out,
        processes=processes,
        recipe_name=chosen.recipe,
        force_budget=chosen.force_budget,
    )
    if st.json:
        emit_json(
            {
                "runs": res.runs,
                "report": str(res.report),
                "wall_s": res.wall_s,
                "reference_check": res.reference_check,
                "verdict": res.verdict,
                "caveat": res.caveat,
                "metrics": {k: {n: v for n, (v, _) in m.items()} for k, m in res.metrics.items()},
            }
        )
        return

    title = f"{molecule}: MSE vs CRMSE ({preset}, seed {seed})"
    tables = metrics_tables(
        title, res.metrics, headline(res.metrics), width=console.width, key_title=names.metric_title
    )
    for table in tables:
        console.print(table)
    floors = floors_line(res.metrics)
    if floors:
        console.print(floors, highlight=False, soft_wrap=True)
    if res.reference_check:
        from crmse_cli.stages.fetch_xtb import check_summary

        console.print(f"reference: {check_summary(res.reference_check)}", highlight=False)
    runs = ", ".join(f"{k}={v}" for k, v in res.runs.items())
    console.print(f"runs: {runs}", highlight=False, soft_wrap=True)  # one line: tests and scripts read it
    console.print(f"report: {res.report}  ({res.wall_s / 60:.1f} min)", highlight=False)
    console.print("\nverdict (CRMSE against MSE):", highlight=False)
    for line in [*res.verdict, *([res.caveat] if res.caveat else [])]:
        console.print(f"  {line}", highlight=False, soft_wrap=True)
    if open_ and res.report is not None:  # None: no comparison report was written
        open_report(res.report)


def register(app: typer.Typer) -> None:
    """Add this module's command to ``app``."""
    app.command("reproduce")(reproduce_command)
