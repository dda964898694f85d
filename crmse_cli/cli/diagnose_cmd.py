"""`crmse diagnose`: instruments that tell repair from softening.

Hessian ratios, soft-mode force slopes, lift of collapsed frames, pooled stability,
model-vs-model energy KS.
"""

from __future__ import annotations

import typer

from crmse_cli.cli.common import DeviceOption, TrustCodeOption, emit_result, set_threads, state, workspace
from crmse_cli.config import load_config, with_default
from crmse_cli.stages.diagnose_config import DiagnoseConfig


def _h(text: str, field: str) -> str:
    return with_default(text, DiagnoseConfig, field)


def diagnose_command(
    ctx: typer.Context,
    run: str = typer.Argument(..., help="The model under test (a regularize or pretrain run)."),
    against: str = typer.Option(..., "--against", help="The MSE model run it started from."),
    control: str | None = typer.Option(None, "--control", help="The lambda = 0 control run."),
    samples: list[str] | None = typer.Option(
        None,
        "--samples",
        help="Sample runs of the MSE model whose collapsed frames are lifted (repeatable); "
        "default: all of its completed sample runs.",
    ),
    soft_modes: int | None = typer.Option(
        None, "--soft-modes", help=_h("Softest MSE modes summarised (torsions).", "soft_modes")
    ),
    stiff_modes: int | None = typer.Option(
        None, "--stiff-modes", help=_h("Stiffest MSE modes summarised.", "stiff_modes")
    ),
    mass_weighted: bool | None = typer.Option(
        None, "--mass-weighted", help="Modes in mass-weighted coordinates (default: plain Cartesian)."
    ),
    temperature_K: float | None = typer.Option(
        None, "--temperature-K", help="kT unit of the collapse lift (default: the samples' temperature)."
    ),
    max_test_frames: int | None = typer.Option(
        None, "--max-test-frames", help=_h("Test frames for the force slopes.", "max_test_frames")
    ),
    seed: int | None = typer.Option(None, help=_h("Seed of the frame picks.", "seed")),
    device: DeviceOption = "cpu",
    name: str | None = typer.Option(None, help="A unique name for the diagnose run."),
    trust_code: TrustCodeOption = False,
) -> None:
    """Is RUN repaired or softened relative to its MSE model? Stores a diagnose run."""
    from crmse_cli.stages.diagnose import diagnose

    st = state(ctx)
    set_threads(st.threads)
    cfg = load_config(
        DiagnoseConfig,
        soft_modes=soft_modes,
        stiff_modes=stiff_modes,
        mass_weighted=mass_weighted,
        temperature_K=temperature_K,
        max_test_frames=max_test_frames,
        seed=seed,
        device=device,
    )
    res = diagnose(
        workspace(st, trust_code=trust_code),
        run,
        against=against,
        control=control,
        samples=samples or None,
        config=cfg,
        name=name,
    )
    fields = {"run_id": res.run_id, "diagnosis": str(res.diagnosis_path), "wall_s": round(res.wall_s, 1)}
    if st.json:
        fields["modes"] = res.modes  # per-mode eigenvalues (MSE) and ratios, softest first
    emit_result(st, f"diagnose run {res.run_id}", res.metrics, **fields)


def register(app: typer.Typer) -> None:
    """Add this module's command to ``app``."""
    app.command("diagnose")(diagnose_command)
