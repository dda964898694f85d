"""`crmse fetch rmd17 MOLECULE` and `crmse fetch xyz FILE`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer

from crmse_cli.cli.common import console, emit_json, state

fetch_app = typer.Typer(help="Get a dataset into the workspace and register it.", no_args_is_help=True)


def _print(ctx: typer.Context, res: object) -> None:
    data = asdict(res)  # type: ignore[call-overload]
    if state(ctx).json:
        emit_json(data)
        return
    what = "already fetched" if data["already"] else "fetched"
    splits = ", ".join(f"{k}: {v.get('train', 0)} train / {v.get('test', 0)} test" for k, v in data["splits"].items())
    console.print(f"[green]{what}[/] {data['name']}: {data['n_frames']} frames of {data['n_atoms']} atoms "
                  f"({splits or 'no splits'}) -> {data['path']}", highlight=False)


@fetch_app.command("rmd17")
def rmd17_command(
    ctx: typer.Context,
    molecule: str = typer.Argument(..., help="aspirin, azobenzene, benzene, ethanol, malonaldehyde, naphthalene, "
                                   "paracetamol, salicylic, toluene or uracil."),
    source: str = typer.Option("figshare", help="figshare: the official 1 GB archive (Materials Cloud as mirror); "
                               "andersx: the ten 1000-frame split files (ethanol, aspirin)."),
    from_path: Path | None = typer.Option(None, "--from", help="A local rmd17.tar.bz2 (official layout) or npz."),
    force: bool = typer.Option(False, help="Convert and register again even if already fetched."),
) -> None:
    """Fetch an rMD17 molecule with its official train/test splits."""
    from crmse_cli.stages.fetch import fetch_rmd17

    _print(ctx, fetch_rmd17(state(ctx).workspace, molecule, source=source, from_path=from_path, force=force))


@fetch_app.command("xyz")
def xyz_command(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="Extended-XYZ file: energy in the comment line, forces per atom."),
    name: str = typer.Option(..., help="Dataset name to register."),
    energy_unit: str = typer.Option(..., help="Energy unit of the file: eV or kcal/mol (forces per Å)."),
    test_fraction: float = typer.Option(0.0, help="Hold out this share of frames as split 01's test part."),
    split_seed: int = typer.Option(0, help="Seed of the random split."),
    force: bool = typer.Option(False, help="Import again even if registered."),
) -> None:
    """Import your own frames from an extended-XYZ file (through ASE)."""
    from crmse_cli.stages.fetch import fetch_xyz

    _print(ctx, fetch_xyz(state(ctx).workspace, path, name=name, energy_unit=energy_unit,
                          test_fraction=test_fraction, split_seed=split_seed, force=force))


def register(app: typer.Typer) -> None:
    app.add_typer(fetch_app, name="fetch")
