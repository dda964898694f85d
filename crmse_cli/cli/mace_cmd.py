"""`crmse mace import MODEL --data XYZ` and `crmse mace export RUN OUT`: MACE models in and out."""

from __future__ import annotations

from pathlib import Path

import typer

from crmse_cli.cli.common import (
    RunNameOption,
    TrustCodeOption,
    console,
    emit_json,
    emit_result,
    set_threads,
    shown,
    state,
    workspace,
)
from crmse_cli.cli.conventions import choice
from crmse_cli.units import XYZ_ENERGY_UNITS

mace_app = typer.Typer(help="Bring a mace-torch model in as a model run; write MACE runs back out.")


@mace_app.command("import")
def import_command(
    ctx: typer.Context,
    model: Path = typer.Argument(..., help="The mace-torch .model file."),
    data: Path = typer.Option(..., "--data", help="Its extended-XYZ training file (one molecule)."),
    dataset: str | None = typer.Option(None, "--dataset", help="Dataset name (default: the file's stem)."),
    energy_unit: str = choice(
        XYZ_ENERGY_UNITS,
        "--energy-unit",
        default="eV",
        help="The file's energy unit (MACE's: eV); forces per Å.",
    ),
    energy_key: str | None = typer.Option(None, "--energy-key", help="Energy key, e.g. REF_energy."),
    forces_key: str | None = typer.Option(None, "--forces-key", help="Forces column, e.g. REF_forces."),
    name: RunNameOption = None,
    trust_code: TrustCodeOption = False,
) -> None:
    """Register a MACE model and its training file as a model run (test errors on 10% of the frames)."""
    from crmse_cli.stages.mace import import_mace

    st = state(ctx)
    set_threads(st.threads)
    res = import_mace(
        workspace(st, trust_code=trust_code),
        model,
        data,
        dataset=dataset,
        energy_unit=energy_unit,
        energy_key=energy_key,
        forces_key=forces_key,
        name=name,
    )
    emit_result(
        st,
        f"imported MACE run {res.run_id}",
        res.metrics,
        run_id=res.run_id,
        dataset=res.dataset,
        checkpoint=str(res.checkpoint),
    )


@mace_app.command("export")
def export_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="A MACE model run (id or name) or crmse checkpoint."),
    out: Path = typer.Argument(..., help="Where to write the model in mace-torch's format."),
    trust_code: TrustCodeOption = False,
) -> None:
    """Write a MACE run's model as a mace-torch .model file (MACECalculator, mace tools)."""
    from crmse_cli.stages.mace import export_model

    st = state(ctx)
    path = export_model(workspace(st, trust_code=trust_code), ref, out)
    if st.json:
        emit_json({"path": str(path)})
    else:
        console.print(f"wrote {shown(path)}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``mace`` command group to ``app``."""
    app.add_typer(mace_app, name="mace")
