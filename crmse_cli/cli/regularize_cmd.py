"""`crmse regularize`: CRMSE post-training with persistent Langevin chains."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from crmse_cli.cli.common import emit_result, set_threads, state


def regularize_command(
    ctx: typer.Context,
    source: str | None = typer.Option(None, "--from", help="Pretrain run (id or name) or checkpoint file."),
    lambda_: float = typer.Option(0.015, "--lambda", help="Weight of the contrastive term (0: the control)."),
    eta_A2: float = typer.Option(4e-4, "--eta-A2", help="ULA step size of the chains in Å²."),
    steps_per_update: int = typer.Option(
        200, "--steps-per-update", help="K: ULA steps per parameter update."
    ),
    chains: int = typer.Option(64, help="C: number of persistent chains."),
    updates: int = typer.Option(400, help="Number of parameter updates."),
    temperature_K: float = typer.Option(500.0, "--temperature-K", help="Temperature of the Boltzmann term."),
    lr: float = typer.Option(3e-5, help="Adam learning rate after warm-up."),
    warmup: int = typer.Option(20, help="Linear learning-rate warm-up, in updates."),
    batch_size: int = typer.Option(32, help="Training frames per update."),
    reset_fraction: float = typer.Option(0.0, help="Share of chains reset to training frames each update."),
    seed: int = typer.Option(0, help="Seed of chains, batches and resets."),
    config: Path | None = typer.Option(
        None, help="TOML file with a \\[contrastive] table of settings (options override)."
    ),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    name: str | None = typer.Option(None, help="A unique name for the run."),
    resume: str | None = typer.Option(None, help="Continue an interrupted regularize run exactly."),
) -> None:
    """Post-train a potential with CRMSE: L = L_MSE + lambda * beta * (<U>_data - <U>_chains)."""
    from crmse_cli.stages.regularize import RegularizeConfig, regularize
    from crmse_cli.train.contrastive import ContrastiveConfig

    st = state(ctx)
    set_threads(st.threads)
    base = ContrastiveConfig()
    if config is not None:
        from crmse_cli.config import from_dict, read_config_file

        data = read_config_file(config)
        section = dict(data.get("contrastive", data))
        if "lambda" in section:
            section["lambda_"] = section.pop("lambda")
        base = from_dict(ContrastiveConfig, section, where=str(config))
    options = dict(
        lambda_=lambda_,
        eta_A2=eta_A2,
        steps_per_update=steps_per_update,
        n_chains=chains,
        n_updates=updates,
        temperature_K=temperature_K,
        lr=lr,
        warmup_updates=warmup,
        batch_size=batch_size,
        reset_fraction=reset_fraction,
        seed=seed,
    )
    # With a config file, only options typed on the command line override it.
    given = {
        k: v for k, v in options.items() if config is None or _from_command_line(ctx, _OPTION_OF.get(k, k))
    }
    try:
        cfg = RegularizeConfig(contrastive=replace(base, **given), device=device)
    except ValueError as exc:
        from crmse_cli.errors import CrmseError

        raise CrmseError(f"invalid CRMSE setting: {exc}") from exc
    res = regularize(st.workspace, source, cfg, name=name, resume=resume)
    emit_result(
        st,
        f"regularize run {res.run_id}",
        res.metrics,
        run_id=res.run_id,
        checkpoint=str(res.checkpoint),
        wall_s=round(res.wall_s, 1),
    )


_OPTION_OF = {"n_chains": "chains", "n_updates": "updates", "warmup_updates": "warmup"}


def register(app: typer.Typer) -> None:
    app.command("regularize")(regularize_command)


def _from_command_line(ctx: typer.Context, option: str) -> bool:
    source = ctx.get_parameter_source(option)
    return source is not None and source.name == "COMMANDLINE"
