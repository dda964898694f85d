"""`crmse stabilize`: from an unstable model to a stable one in one resumable command."""

from __future__ import annotations

from pathlib import Path

import typer

from crmse_cli.cli.common import (
    CompileOption,
    OpenOption,
    TrustCodeOption,
    console,
    emit_json,
    open_report,
    set_threads,
    state,
    workspace,
)
from crmse_cli.cli.conventions import choice, setting_option, settings_given
from crmse_cli.config import load_config
from crmse_cli.stages.stabilize_config import StabilizeConfig
from crmse_cli.units import XYZ_ENERGY_UNITS

S = StabilizeConfig


def stabilize_command(
    ctx: typer.Context,
    model: str = typer.Argument(
        ..., help="A mace-torch .model file, a crmse checkpoint (.pt) or a crmse run (id or name)."
    ),
    data: str | None = typer.Option(
        None,
        "--data",
        help="MACE: the extended-XYZ file it was trained on, or a registered dataset. "
        "crmse: leave out (the model's own dataset).",
    ),
    force_budget: float | None = setting_option(S, "force_budget"),
    recipe: str | None = setting_option(S, "recipe"),
    temperature_K: float | None = setting_option(S, "temperature_K"),
    test: Path | None = typer.Option(
        None,
        "--test",
        help="Extended-XYZ file of held-out labelled frames \\[default: the split's test frames].",
    ),
    name: str | None = typer.Option(
        None, "--name", help="Prefix of the steps' run names \\[default: the model's file stem or run name]."
    ),
    dataset_name: str | None = typer.Option(
        None, "--dataset-name", help="Dataset name of a --data file \\[default: its stem]."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="The stabilized MACE model \\[default: <MODEL stem>-stable.model beside MODEL]."
    ),
    replicas: int | None = setting_option(S, "replicas"),
    steps: int | None = setting_option(S, "steps"),
    record_every: int | None = setting_option(S, "record_every"),
    updates: int | None = setting_option(S, "updates"),
    lambda_: float | None = setting_option(S, "lambda_"),
    polish_updates: int | None = setting_option(S, "polish_updates"),
    polish_every: int | None = setting_option(S, "polish_every"),
    budget_every: int | None = setting_option(S, "budget_every"),
    screen_replicas: int | None = setting_option(S, "screen_replicas"),
    screen_steps: int | None = setting_option(S, "screen_steps"),
    seed: int | None = setting_option(S, "seed"),
    processes: int | None = setting_option(S, "processes"),
    energy_unit: str = choice(
        XYZ_ENERGY_UNITS, "--energy-unit", default="eV", help="The XYZ files' energy unit; forces per Å."
    ),
    energy_key: str | None = typer.Option(None, "--energy-key", help="Energy key, e.g. REF_energy."),
    forces_key: str | None = typer.Option(None, "--forces-key", help="Forces column, e.g. REF_forces."),
    trust_code: TrustCodeOption = False,
    open_: OpenOption = False,
    compile_: CompileOption = None,
) -> None:
    """Import, screen, CRMSE, an MSE polish cut by the force budget, screen again, diagnose, report, export.

    The polish continues CRMSE with the MSE loss alone; the force budget keeps its earliest
    checkpoint whose force error on held-out frames is within budget of the original model's
    (--recipe crmse: CRMSE alone, as before). Every step is a registry run named NAME-<step>;
    after Ctrl-C the same command continues. The last lines are the verdict.
    """
    from crmse_cli.stages.stabilize import stabilize

    st = state(ctx)
    set_threads(st.threads)
    cfg = load_config(StabilizeConfig, None, **settings_given(ctx.params, S))
    res = stabilize(
        workspace(st, trust_code=trust_code, compile_=compile_),
        model,
        data=data,
        config=cfg,
        name=name,
        dataset_name=dataset_name,
        test=test,
        out=out,
        energy_unit=energy_unit,
        energy_key=energy_key,
        forces_key=forces_key,
    )
    if st.json:
        emit_json(
            {
                "name": res.name,
                "runs": res.runs,
                "reused": res.reused,
                "report": str(res.report),
                "model": str(res.model),
                "verdict": res.verdict,
            }
        )
        return
    console.print(f"runs: {', '.join(f'{k}={v}' for k, v in res.runs.items())}", highlight=False)
    console.print(f"report: {res.report}", highlight=False)
    console.print(f"\nverdict ({res.name}):", highlight=False)
    for line in res.verdict:
        console.print(f"  {line}", highlight=False, soft_wrap=True)
    if open_ and res.report is not None:  # None: no comparison report was written
        open_report(res.report)


def register(app: typer.Typer) -> None:
    """Add this module's command to ``app``."""
    app.command("stabilize")(stabilize_command)
