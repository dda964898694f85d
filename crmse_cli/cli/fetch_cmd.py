"""`crmse fetch rmd17 MOLECULE`, `fetch xyz FILE`, `fetch xtb`, `fetch active`: get a dataset, register it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from crmse_cli.cli.common import console, emit_json, shown, state
from crmse_cli.cli.conventions import choice, setting_option, settings_given
from crmse_cli.config import load_config
from crmse_cli.data.sources import SOURCES
from crmse_cli.data.xtb_config import XtbMDConfig
from crmse_cli.units import XYZ_ENERGY_UNITS

if TYPE_CHECKING:
    from crmse_cli.stages.fetch import FetchResult

fetch_app = typer.Typer(help="Get a dataset into the workspace and register it.", no_args_is_help=True)


def _print(ctx: typer.Context, result: FetchResult) -> None:
    data = asdict(result)
    if state(ctx).json:
        emit_json(data)
        return
    what = "already fetched (use --force to fetch again)" if data["already"] else "fetched"
    splits = ", ".join(
        f"{k}: {v.get('train', 0)}/{v.get('test', 0)}" for k, v in sorted(data["splits"].items())
    )
    console.print(
        f"[green]{what}[/] {shown(data['name'])}: {data['n_frames']} frames of "
        f"{data['n_atoms']} atoms, splits (train/test) {splits or 'none'}",
        highlight=False,
    )
    console.print(
        f"  source {shown(str(data['origin']))}\n  file   {shown(str(data['path']))}", highlight=False
    )


@fetch_app.command("rmd17")
def rmd17_command(
    ctx: typer.Context,
    molecule: str = typer.Argument(
        ...,
        help="aspirin, azobenzene, benzene, ethanol, malonaldehyde, naphthalene, paracetamol, salicylic, "
        "toluene or uracil.",
    ),
    source: str = choice(
        SOURCES,
        "--source",
        default="figshare",
        help="figshare: the official 1 GB archive, downloaded once for all molecules (Materials Cloud as "
        "mirror). andersx: the ten 1000-frame split files of github.com/andersx/rmd17-npz "
        "(ethanol, aspirin).",
    ),
    from_path: Path | None = typer.Option(
        None,
        "--from",
        help="Offline: a local rmd17.tar.bz2 (official layout), rmd17_<mol>.npz, "
        "or andersx split file/folder.",
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
    energy_unit: str = choice(
        XYZ_ENERGY_UNITS,
        "--energy-unit",
        default=...,
        help="Energy unit of the file (forces: the same per Å); converted to kcal/mol.",
    ),
    test_fraction: float | None = typer.Option(
        None,
        "--test-fraction",
        help="Hold out this share of frames as split 01's test part (default: no split; "
        "0.2 when only --split-seed is given).",
    ),
    split_seed: int | None = typer.Option(None, "--split-seed", help="Seed of the random split (default 0)."),
    force: bool = typer.Option(False, "--force", help="Replace a dataset of the same name."),
    energy_key: str | None = typer.Option(
        None, "--energy-key", help="Comment-line key of the energy, e.g. REF_energy (MACE's)."
    ),
    forces_key: str | None = typer.Option(
        None, "--forces-key", help="Per-atom column of the forces, e.g. REF_forces (MACE's)."
    ),
) -> None:
    """Import your own frames of one molecule from an extended-XYZ file (read through ASE)."""
    from crmse_cli.stages.fetch import fetch_xyz

    _print(
        ctx,
        fetch_xyz(
            state(ctx).workspace,
            path,
            name=name,
            energy_unit=energy_unit,
            test_fraction=test_fraction,
            split_seed=split_seed,
            force=force,
            energy_key=energy_key,
            forces_key=forces_key,
        ),
    )


X = XtbMDConfig


@fetch_app.command("xtb")
def xtb_command(
    ctx: typer.Context,
    molecule: str = typer.Argument(
        ..., help="ethanol, or any name of ase.build.molecule; other molecules need --start-from."
    ),
    start_from: str | None = typer.Option(
        None, "--start-from", help="Start geometry: a registered dataset (its frame 0) or an xyz file."
    ),
    temperature_K: float | None = setting_option(X, "temperature_K"),
    frames: int | None = setting_option(X, "frames"),
    method: str | None = setting_option(X, "method"),
    label_method: str | None = setting_option(X, "label_method"),
    timestep_fs: float | None = setting_option(X, "timestep_fs"),
    friction_per_fs: float | None = setting_option(X, "friction_per_fs"),
    equilibration_ps: float | None = setting_option(X, "equilibration_ps"),
    stride: int | None = setting_option(X, "stride"),
    replicas: int | None = setting_option(X, "replicas"),
    processes: int = typer.Option(1, "--processes", help="Worker processes (one thread each; 1 to 1024)."),
    seed: int | None = setting_option(X, "seed"),
    checkpoint_every_s: float | None = setting_option(X, "checkpoint_every_s"),
    name: str | None = typer.Option(None, "--name", help="Dataset name (default <molecule>-xtb[-...])."),
    force: bool = typer.Option(False, "--force", help="Discard a cached generation with other settings."),
) -> None:
    """Generate an exact-temperature GFN-xTB reference by Langevin dynamics (rerun to resume)."""
    from crmse_cli.stages.fetch_xtb import fetch_xtb

    cfg = load_config(XtbMDConfig, **settings_given(ctx.params, X))
    ws = state(ctx).workspace
    res = fetch_xtb(ws, molecule, cfg, start_from=start_from, name=name, processes=processes, force=force)
    if state(ctx).json:
        emit_json(asdict(res))
        return
    _print(ctx, res.fetch)
    if not res.fetch.already:
        console.print(
            f"  speed  {res.frames_per_s:.1f} frames/s, {res.ms_per_force_call:.2f} ms per force call "
            f"per process ({res.wall_s:.0f} s)",
            highlight=False,
        )
    for title, check in (("labels", res.check), ("sampling surface", res.check_sampling)):
        if check:
            console.print(check_line(title, check), highlight=False)


@fetch_app.command("active")
def active_command(
    ctx: typer.Context,
    from_sample: str = typer.Option(
        ..., "--from-sample", help="Sample run (id or name) of the model to improve."
    ),
    frames: int = typer.Option(..., "--frames", help="Frames to pick and label (K, the label budget)."),
    name: str = typer.Option(..., "--name", help="Name of the new dataset."),
    seed: int = typer.Option(0, "--seed", help="Seed of the picks."),
    window_steps: int = typer.Option(
        200, "--window-steps", help="MD steps before a replica left that count as where it went wrong."
    ),
    per_left: int = typer.Option(1, "--per-left", help="Frames from each replica that left, first."),
    burn_in_steps: int = typer.Option(
        1000,
        "--burn-in-steps",
        help="Replicas that stayed are picked after this step (they start at test frames).",
    ),
    force: bool = typer.Option(False, "--force", help="Replace a dataset of the same name."),
) -> None:
    """Active learning: the model's xTB dataset plus K frames of its MD, labelled with its own xTB method.

    The new frames join the training part of the sample's split (as its `added` rows, always trained
    on); `pretrain --n-train 200+K --seed S` on the new dataset trains on the seed-S 200-frame
    parent's frames plus the K, with the same validation and test frames.
    """
    from crmse_cli.stages.fetch_active import fetch_active, result_dict

    res = fetch_active(
        state(ctx).workspace, from_sample, frames=frames, name=name, seed=seed,
        window_steps=window_steps, per_left=per_left, burn_in_steps=burn_in_steps, force=force,
    )  # fmt: skip
    if state(ctx).json:
        emit_json(result_dict(res))
        return
    _print(ctx, res.fetch)
    if not res.fetch.already:
        console.print(
            f"  added  {res.added} frames ({res.near_leaving} from just before a replica left), "
            f"labelled in {res.label_s:.1f} s",
            highlight=False,
        )


def check_line(title: str, check: Mapping[str, object]) -> str:
    """One line: the three temperatures with error bars against the set one."""
    parts = [
        f"{k} {v['value_K']:.0f} ± {v['error_K']:.0f} K" + ("" if v["passed"] else " [red](miss)[/]")
        for k, v in check.items()
        if isinstance(v, dict)
    ]
    verdict = "[green]reads[/]" if check["passed"] else "[red]does not read[/]"
    return f"  check  ({title}) {verdict} {check['temperature_K']:g} K: " + ", ".join(parts)


def register(app: typer.Typer) -> None:
    """Add the ``fetch`` command group to ``app``."""
    app.add_typer(fetch_app, name="fetch")
