"""`crmse fetch rmd17 MOLECULE` and `crmse fetch xyz FILE`: get a dataset and register it."""

from __future__ import annotations

from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from crmse_cli.cli.common import console, emit_json, state

fetch_app = typer.Typer(help="Get a dataset into the workspace and register it.", no_args_is_help=True)


class EnergyUnit(str, Enum):
    """Energy units an xyz file may use."""

    eV = "eV"
    kcal_mol = "kcal/mol"


def _print(ctx: typer.Context, result: Any) -> None:
    data = asdict(result)
    if state(ctx).json:
        emit_json(data)
        return
    what = "already fetched (use --force to fetch again)" if data["already"] else "fetched"
    splits = ", ".join(
        f"{k}: {v.get('train', 0)}/{v.get('test', 0)}" for k, v in sorted(data["splits"].items())
    )
    console.print(
        f"[green]{what}[/] {escape(data['name'])}: {data['n_frames']} frames of "
        f"{data['n_atoms']} atoms, splits (train/test) {splits or 'none'}",
        highlight=False,
    )
    console.print(
        f"  source {escape(str(data['origin']))}\n  file   {escape(str(data['path']))}", highlight=False
    )


@fetch_app.command("rmd17")
def rmd17_command(
    ctx: typer.Context,
    molecule: str = typer.Argument(
        ...,
        help="aspirin, azobenzene, benzene, ethanol, malonaldehyde, naphthalene, paracetamol, salicylic, "
        "toluene or uracil.",
    ),
    source: str = typer.Option(
        "figshare",
        "--source",
        help="figshare: the official 1 GB archive, downloaded once for all molecules (Materials Cloud as "
        "mirror). andersx: the ten 1000-frame split files of github.com/andersx/rmd17-npz (ethanol, aspirin).",
    ),
    from_path: Path | None = typer.Option(
        None,
        "--from",
        help="Offline: a local rmd17.tar.bz2 (official layout), rmd17_<mol>.npz, or andersx split file/folder.",
    ),
    force: bool = typer.Option(False, "--force", help="Convert and register again even if already fetched."),
) -> None:
    """Fetch an rMD17 molecule with its five official train/test splits (Å, kcal/mol)."""
    from crmse_cli.stages.fetch import fetch_rmd17

    _print(ctx, fetch_rmd17(state(ctx).workspace, molecule, source=source, from_path=from_path, force=force))


@fetch_app.command("xyz")
def xyz_command(
    ctx: typer.Context,
    path: Path = typer.Argument(
        ..., help="Extended-XYZ file: energy= on each comment line, forces per atom."
    ),
    name: str = typer.Option(..., "--name", help="Dataset name to register."),
    energy_unit: EnergyUnit = typer.Option(
        ..., "--energy-unit", help="Energy unit of the file (forces: the same per Å); converted to kcal/mol."
    ),
    test_fraction: float | None = typer.Option(
        None,
        "--test-fraction",
        help="Hold out this share of frames as split 01's test part (default: no split; "
        "0.2 when only --split-seed is given).",
    ),
    split_seed: int | None = typer.Option(None, "--split-seed", help="Seed of the random split (default 0)."),
    force: bool = typer.Option(False, "--force", help="Replace a dataset of the same name."),
) -> None:
    """Import your own frames of one molecule from an extended-XYZ file (read through ASE)."""
    from crmse_cli.stages.fetch import fetch_xyz

    _print(
        ctx,
        fetch_xyz(
            state(ctx).workspace,
            path,
            name=name,
            energy_unit=energy_unit.value,
            test_fraction=test_fraction,
            split_seed=split_seed,
            force=force,
        ),
    )


def register(app: typer.Typer) -> None:
    """Add the ``fetch`` command group to ``app``."""
    app.add_typer(fetch_app, name="fetch")
