"""`crmse regularize`: CRMSE post-training with persistent Langevin chains."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import typer

from crmse_cli.cli.budget_options import load_budget
from crmse_cli.cli.common import (
    CompileOption,
    DeviceOption,
    RunNameOption,
    TrustCodeOption,
    emit_result,
    set_threads,
    state,
    workspace,
)
from crmse_cli.cli.conventions import setting_option, settings_given
from crmse_cli.config import load_config, read_config_file
from crmse_cli.errors import UsageError
from crmse_cli.stages.regularize_config import RegularizeConfig
from crmse_cli.train.budget import BudgetConfig
from crmse_cli.train.contrastive_config import ContrastiveConfig

C, B, R = ContrastiveConfig, BudgetConfig, RegularizeConfig
TABLES = ("contrastive", "budget", "regularize")
"""The tables of regularize's ``--config`` file: ContrastiveConfig, BudgetConfig, RegularizeConfig's own."""


def regularize_command(
    ctx: typer.Context,
    source: str | None = typer.Option(None, "--from", help="Pretrain run (id or name) or checkpoint file."),
    lambda_: float | None = setting_option(C, "lambda_"),
    lambda_units: str | None = setting_option(C, "lambda_units"),
    lc_beta: bool | None = setting_option(C, "lc_beta"),
    eta_A2: float | None = setting_option(C, "eta_A2"),
    eta_units: str | None = setting_option(C, "eta_units"),
    steps_per_update: int | None = setting_option(C, "steps_per_update"),
    n_chains: int | None = setting_option(C, "n_chains"),
    n_updates: int | None = setting_option(C, "n_updates"),
    temperature_K: float | None = setting_option(C, "temperature_K"),
    chain_temperature_K: float | None = setting_option(C, "chain_temperature_K"),
    chain_sampler: str | None = setting_option(C, "chain_sampler"),
    init: str | None = setting_option(C, "init"),
    lr: float | None = setting_option(C, "lr"),
    warmup_updates: int | None = setting_option(C, "warmup_updates"),
    batch_size: int | None = setting_option(C, "batch_size"),
    reset_fraction: float | None = setting_option(C, "reset_fraction"),
    grad_clip: float | None = setting_option(C, "grad_clip"),
    energy_weight: float | None = setting_option(C, "energy_weight"),
    force_weight: float | None = setting_option(C, "force_weight"),
    seed: int | None = setting_option(C, "seed"),
    chain_source: str | None = setting_option(C, "chain_source"),
    positives: str | None = setting_option(C, "positives"),
    optimizer_init: str | None = setting_option(C, "optimizer_init"),
    ema_decay: float | None = setting_option(C, "ema_decay"),
    lambda_decay_after: int | None = setting_option(C, "lambda_decay_after"),
    lambda_decay_threshold: float | None = setting_option(C, "lambda_decay_threshold"),
    lambda_decay_updates: int | None = setting_option(C, "lambda_decay_updates"),
    lambda_control: str | None = setting_option(C, "lambda_control"),
    lambda_control_up: float | None = setting_option(C, "lambda_control_up"),
    lambda_control_down: float | None = setting_option(C, "lambda_control_down"),
    lambda_control_range: float | None = setting_option(C, "lambda_control_range"),
    force_budget: float | None = setting_option(B, "force_budget"),
    budget_every: int | None = setting_option(B, "budget_every"),
    screen_replicas: int | None = setting_option(B, "screen_replicas"),
    screen_steps: int | None = setting_option(B, "screen_steps"),
    screen_temperature_K: float | None = setting_option(B, "screen_temperature_K"),
    budget_pick: str | None = setting_option(B, "budget_pick"),
    budget_frames: str | None = setting_option(B, "budget_frames"),
    val_every: int | None = setting_option(R, "val_every"),
    checkpoint_every: int | None = setting_option(R, "checkpoint_every"),
    chains_every: int | None = setting_option(R, "chains_every"),
    config: Path | None = typer.Option(
        None,
        help="TOML file with \\[contrastive], \\[budget] and \\[regularize] tables of settings "
        "(options override).",
    ),
    device: DeviceOption = "cpu",
    name: RunNameOption = None,
    resume: str | None = typer.Option(None, help="Continue an interrupted regularize run exactly."),
    from_model: Path | None = typer.Option(
        None, "--from-model", help="A mace-torch .model file (with --data): imported as a model run first."
    ),
    data_file: Path | None = typer.Option(
        None, "--data", help="Extended-XYZ training file of --from-model (eV, eV/Å)."
    ),
    energy_key: str | None = typer.Option(None, "--energy-key", help="--data's energy key, e.g. REF_energy."),
    forces_key: str | None = typer.Option(None, "--forces-key", help="--data's forces, e.g. REF_forces."),
    trust_code: TrustCodeOption = False,
    compile_: CompileOption = None,
) -> None:
    """Post-train a potential with CRMSE: L = L_MSE + lambda * beta * (<U>_data - <U>_chains)."""
    from crmse_cli.stages.regularize import regularize

    st = state(ctx)
    ws = workspace(st, trust_code=trust_code, compile_=compile_)
    set_threads(st.threads)
    cfg = load_regularize(config, ctx.params)
    given = {
        **settings_given(ctx.params, C),
        **settings_given(ctx.params, B),
        **settings_given(ctx.params, R),
    }
    given = {k: v for k, v in given.items() if v is not None and k != "device"}
    if resume is not None and config is not None:
        raise UsageError("--resume continues the run with its own settings; drop --config")
    if from_model is not None:  # bring your own MACE model: resolves to an imported model run
        from crmse_cli.stages.mace import import_from_options

        source = import_from_options(ws, from_model, data_file, source, energy_key, forces_key)
    res = regularize(ws, source, cfg, name=name, resume=resume, settings=given)
    emit_result(
        st,
        f"regularize run {res.run_id}",
        res.metrics,
        run_id=res.run_id,
        checkpoint=str(res.checkpoint),
        wall_s=round(res.wall_s, 1),
    )


def load_regularize(path: Path | None, params: Mapping[str, object]) -> RegularizeConfig:
    """The RegularizeConfig of the options ``params`` (by field name) over the tables of ``path``.

    A file without tables is read whole as the contrastive settings; ``[budget]`` and
    ``[regularize]`` are read where the file has them.
    """
    own_table = path is not None and isinstance(read_config_file(path).get("regularize"), dict)
    contrastive = load_config(
        C, path, section="contrastive", siblings=TABLES[1:], **settings_given(params, C)
    )
    own = load_config(
        R, path if own_table else None, section="regularize", siblings=TABLES[:2], **settings_given(params, R)
    )
    return replace(own, contrastive=contrastive, budget=load_budget(path, settings_given(params, B)))


def register(app: typer.Typer) -> None:
    """Add ``crmse regularize`` to ``app``."""
    app.command("regularize")(regularize_command)
