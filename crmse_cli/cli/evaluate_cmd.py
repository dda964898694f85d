"""`crmse evaluate`: test-set accuracy and distribution metrics against DFT."""

from __future__ import annotations

import typer

from crmse_cli.cli.common import DeviceOption, TrustCodeOption, emit_result, set_threads, state, workspace


def evaluate_command(
    ctx: typer.Context,
    run: str = typer.Argument(..., help="A model run (pretrain/regularize) or a sample run."),
    sample: str | None = typer.Option(
        None, "--sample", help="With a model run: also evaluate this sample run."
    ),
    seed: int = typer.Option(0, help="Seed of the frame subsets (configurational temperature)."),
    device: DeviceOption = "cpu",
    name: str | None = typer.Option(None, help="A unique name for the evaluate run."),
    trust_code: TrustCodeOption = False,
) -> None:
    """Energy/force errors on the test frames; for samples, every distribution metric vs DFT."""
    from crmse_cli.stages.evaluate import evaluate

    st = state(ctx)
    set_threads(st.threads)
    ws = workspace(st, trust_code=trust_code)
    res = evaluate(ws, run, sample=sample, name=name, device=device, seed=seed)
    emit_result(
        st,
        f"evaluate run {res.run_id}",
        res.metrics,
        run_id=res.run_id,
        evaluation=str(res.evaluation_path) if res.evaluation_path else None,
    )


def register(app: typer.Typer) -> None:
    """Add this module's command to ``app``."""
    app.command("evaluate")(evaluate_command)
