"""`crmse sample`: batched Langevin dynamics or ULA of a potential."""

from __future__ import annotations

from pathlib import Path

import typer

from crmse_cli.cli.common import (
    DeviceOption,
    RunNameOption,
    TrustCodeOption,
    emit_result,
    set_threads,
    state,
    workspace,
)
from crmse_cli.cli.conventions import DTYPE_CHOICES, choice
from crmse_cli.config import load_config
from crmse_cli.config import with_default as _d
from crmse_cli.stages.sample_config import INTEGRATORS, STARTS, SampleConfig


def _h(text: str, field: str) -> str:
    return _d(text, SampleConfig, field)


def sample_command(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="A pretrain/regularize run (id or name) or a checkpoint file."),
    integrator: str | None = choice(
        INTEGRATORS,
        help=_h(
            "langevin (BAOAB molecular dynamics), ula (overdamped) or mala (Metropolis-adjusted ULA).",
            "integrator",
        ),
    ),
    temperature_K: float | None = typer.Option(
        None, "--temperature-K", help=_h("Temperature in K.", "temperature_K")
    ),
    timestep_fs: float | None = typer.Option(
        None, "--timestep-fs", help=_h("MD time step in fs (langevin).", "timestep_fs")
    ),
    friction_per_fs: float | None = typer.Option(
        None, "--friction-per-fs", help=_h("Langevin friction in 1/fs.", "friction_per_fs")
    ),
    eta_A2: float | None = typer.Option(None, "--eta-A2", help=_h("Step size in Å² (ula, mala).", "eta_A2")),
    replicas: int | None = typer.Option(None, help=_h("Replicas run as one batch.", "replicas")),
    steps: int | None = typer.Option(None, help=_h("Integrator steps (20000 x 0.5 fs = 10 ps).", "steps")),
    record_every: int | None = typer.Option(
        None, help=_h("Record a frame of every replica every N steps.", "record_every")
    ),
    start: str | None = choice(
        STARTS, help=_h("Start frames: test, reference or train frames of the split.", "start")
    ),
    seed: int | None = typer.Option(None, help=_h("Seed of start frames, velocities and noise.", "seed")),
    device: DeviceOption = "cpu",
    dtype: str | None = choice(DTYPE_CHOICES, help=_h("The model's dtype.", "dtype")),
    processes: int | None = typer.Option(
        None,
        help=_h(
            "Worker processes (CPU only), one torch thread each; the replicas are split between them.",
            "processes",
        ),
    ),
    config: Path | None = typer.Option(
        None, help="TOML file of sampling settings (e.g. examples/sample.toml; options override)."
    ),
    name: RunNameOption = None,
    trust_code: TrustCodeOption = False,
) -> None:
    """Sample a potential with many replicas; record frames and when each replica left the basin."""
    from crmse_cli.stages.sample import sample

    st = state(ctx)
    set_threads(st.threads)
    cfg = load_config(
        SampleConfig,
        config,
        section="sample",
        integrator=integrator,
        temperature_K=temperature_K,
        timestep_fs=timestep_fs,
        friction_per_fs=friction_per_fs,
        eta_A2=eta_A2,
        replicas=replicas,
        steps=steps,
        record_every=record_every,
        start=start,
        seed=seed,
        device=device,
        dtype=dtype,
        processes=processes,
    )
    res = sample(workspace(st, trust_code=trust_code), model, cfg, name=name)
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
