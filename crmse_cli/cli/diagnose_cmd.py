"""`crmse diagnose`: instruments that tell repair from softening.

Hessian ratios, soft-mode force slopes, lift of collapsed frames, pooled stability,
model-vs-model energy KS.
"""

from __future__ import annotations

import typer

from crmse_cli.cli.common import DeviceOption, TrustCodeOption, emit_result, set_threads, state, workspace
from crmse_cli.cli.conventions import setting_option, settings_given
from crmse_cli.config import load_config
from crmse_cli.stages.diagnose_config import DiagnoseConfig

D = DiagnoseConfig


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
    soft_modes: int | None = setting_option(D, "soft_modes"),
    stiff_modes: int | None = setting_option(D, "stiff_modes"),
    mass_weighted: bool | None = setting_option(D, "mass_weighted"),
    temperature_K: float | None = setting_option(D, "temperature_K"),
    max_test_frames: int | None = setting_option(D, "max_test_frames"),
    max_collapsed_frames: int | None = setting_option(D, "max_collapsed_frames"),
    fmax: float | None = setting_option(D, "fmax"),
    seed: int | None = setting_option(D, "seed"),
    device: DeviceOption = "cpu",
    name: str | None = typer.Option(None, help="A unique name for the diagnose run."),
    trust_code: TrustCodeOption = False,
) -> None:
    """Is RUN repaired or softened relative to its MSE model? Stores a diagnose run."""
    from crmse_cli.stages.diagnose import diagnose

    st = state(ctx)
    set_threads(st.threads)
    cfg = load_config(DiagnoseConfig, **settings_given(ctx.params, D))
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
