"""`crmse stabilize`: from an unstable model to a stable one in one resumable command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from crmse_cli.cli.budget_options import BudgetEveryOption, ScreenReplicasOption, ScreenStepsOption
from crmse_cli.cli.common import (
    OpenOption,
    TrustCodeOption,
    console,
    emit_json,
    open_report,
    set_threads,
    state,
    workspace,
)
from crmse_cli.cli.conventions import choice
from crmse_cli.config import load_config, with_default
from crmse_cli.stages.stabilize_config import StabilizeConfig
from crmse_cli.units import XYZ_ENERGY_UNITS


def _h(text: str, field: str) -> str:
    return with_default(text, StabilizeConfig, field)


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
    force_budget: float | None = typer.Option(
        None, "--force-budget", help=_h("Largest relative rise of the validation force MAE.", "force_budget")
    ),
    temperature_K: float | None = typer.Option(
        None,
        "--temperature-K",
        help=_h("Where you will run the model: the screens' temperature.", "temperature_K"),
    ),
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
    replicas: int | None = typer.Option(None, "--replicas", help=_h("Replicas of each screen.", "replicas")),
    steps: int | None = typer.Option(
        None, "--steps", help=_h("BAOAB steps of each screen (0.5 fs each).", "steps")
    ),
    updates: int | None = typer.Option(None, "--updates", help="CRMSE updates \\[default: regularize's]."),
    lambda_: float | None = typer.Option(None, "--lambda", help="CRMSE's lambda \\[default: regularize's]."),
    budget_every: BudgetEveryOption = None,
    screen_replicas: ScreenReplicasOption = None,
    screen_steps: ScreenStepsOption = None,
    seed: int | None = typer.Option(None, "--seed", help=_h("Seed of the screens and of CRMSE.", "seed")),
    processes: int | None = typer.Option(
        None, "--processes", help=_h("Worker processes of the screens.", "processes")
    ),
    energy_unit: str = choice(
        XYZ_ENERGY_UNITS, "--energy-unit", default="eV", help="The XYZ files' energy unit; forces per Å."
    ),
    energy_key: str | None = typer.Option(None, "--energy-key", help="Energy key, e.g. REF_energy."),
    forces_key: str | None = typer.Option(None, "--forces-key", help="Forces column, e.g. REF_forces."),
    trust_code: TrustCodeOption = False,
    open_: OpenOption = False,
) -> None:
    """Import, screen, CRMSE with a force budget, screen again, diagnose, report, export: one verdict.

    Every step is a registry run named NAME-<step>; after Ctrl-C the same command continues.
    """
    from crmse_cli.stages.stabilize import stabilize

    st = state(ctx)
    set_threads(st.threads)
    options: dict[str, Any] = {
        "force_budget": force_budget,
        "temperature_K": temperature_K,
        "replicas": replicas,
        "steps": steps,
        "updates": updates,
        "lambda_": lambda_,
        "budget_every": budget_every,
        "screen_replicas": screen_replicas,
        "screen_steps": screen_steps,
        "seed": seed,
        "processes": processes,
    }
    cfg = load_config(StabilizeConfig, None, **options)
    res = stabilize(
        workspace(st, trust_code=trust_code),
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
    if open_:
        open_report(res.report)


def register(app: typer.Typer) -> None:
    """Add this module's command to ``app``."""
    app.command("stabilize")(stabilize_command)
