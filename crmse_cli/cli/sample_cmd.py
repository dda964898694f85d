"""`crmse sample`: batched Langevin dynamics, ULA or another registered sampler of a potential."""

from __future__ import annotations

from pathlib import Path

import typer

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
from crmse_cli.config import load_config
from crmse_cli.sampling.sample_config import SampleConfig

S = SampleConfig


def sample_command(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="A pretrain/regularize run (id or name) or a checkpoint file."),
    integrator: str | None = setting_option(S, "integrator"),
    temperature_K: float | None = setting_option(S, "temperature_K"),
    timestep_fs: float | None = setting_option(S, "timestep_fs"),
    friction_per_fs: float | None = setting_option(S, "friction_per_fs"),
    eta_A2: float | None = setting_option(S, "eta_A2"),
    replicas: int | None = setting_option(S, "replicas"),
    steps: int | None = setting_option(S, "steps"),
    record_every: int | None = setting_option(S, "record_every"),
    start: str | None = setting_option(S, "start"),
    seed: int | None = setting_option(S, "seed"),
    device: DeviceOption = "cpu",
    dtype: str | None = setting_option(S, "dtype"),
    processes: int | None = setting_option(S, "processes"),
    config: Path | None = typer.Option(
        None, help="TOML file of sampling settings (e.g. examples/sample.toml; options override)."
    ),
    name: RunNameOption = None,
    trust_code: TrustCodeOption = False,
    compile_: CompileOption = None,
) -> None:
    """Sample a potential with many replicas; record frames and when each replica left the basin."""
    from crmse_cli.stages.sample import sample

    st = state(ctx)
    set_threads(st.threads)
    cfg = load_config(SampleConfig, config, section="sample", **settings_given(ctx.params, S))
    res = sample(workspace(st, trust_code=trust_code, compile_=compile_), model, cfg, name=name)
    emit_result(
        st,
        f"sample run {res.run_id}",
        res.metrics,
        run_id=res.run_id,
        samples=str(res.samples_path),
        wall_s=round(res.wall_s, 1),
    )


def register(app: typer.Typer) -> None:
    """Add this module's command to ``app``."""
    app.command("sample")(sample_command)
