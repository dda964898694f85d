"""`crmse sample`: batched Langevin dynamics or ULA of a potential."""

from __future__ import annotations

import typer

from crmse_cli.cli.common import DeviceOption, RunNameOption, emit_result, set_threads, state


def sample_command(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="A pretrain/regularize run (id or name) or a checkpoint file."),
    integrator: str = typer.Option(
        "langevin",
        help="langevin (BAOAB molecular dynamics), ula (overdamped) or mala (Metropolis-adjusted ULA).",
    ),
    temperature_K: float = typer.Option(500.0, "--temperature-K", help="Temperature in K."),
    timestep_fs: float = typer.Option(0.5, "--timestep-fs", help="MD time step in fs (langevin)."),
    friction_per_fs: float = typer.Option(0.01, "--friction-per-fs", help="Langevin friction in 1/fs."),
    eta_A2: float = typer.Option(4e-4, "--eta-A2", help="ULA step size in Å² (ula)."),
    replicas: int = typer.Option(64, help="Replicas run as one batch."),
    steps: int = typer.Option(20000, help="Integrator steps (20000 x 0.5 fs = 10 ps)."),
    record_every: int = typer.Option(20, help="Record a frame of every replica every N steps."),
    start: str = typer.Option("test", help="Start frames: test, reference or train frames of the split."),
    seed: int = typer.Option(0, help="Seed of start frames, velocities and noise."),
    device: DeviceOption = "cpu",
    dtype: str = typer.Option("float32", help="float32 or float64."),
    processes: int = typer.Option(
        1,
        help="Worker processes (CPU only), one torch thread each; the replicas are split between them.",
    ),
    name: RunNameOption = None,
) -> None:
    """Sample a potential with many replicas; record frames and when each replica left the basin."""
    from crmse_cli.stages.sample import SampleConfig, sample

    st = state(ctx)
    set_threads(st.threads)
    cfg = SampleConfig(
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
    res = sample(st.workspace, model, cfg, name=name)
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
