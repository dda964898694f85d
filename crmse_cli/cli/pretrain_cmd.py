"""`crmse pretrain`: MSE training of a GNN potential on a fetched dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from crmse_cli.cli.common import RunNameOption, TrustCodeOption, emit_result, set_threads, state, workspace
from crmse_cli.cli.conventions import DEVICE_CHOICES, DTYPE_CHOICES, choice
from crmse_cli.config import load_config
from crmse_cli.defaults import PRETRAIN_MAX_EPOCHS, PRETRAIN_N_VAL


def pretrain_command(
    ctx: typer.Context,
    dataset: str | None = typer.Option(None, help="A fetched dataset, e.g. ethanol (see `crmse datasets`)."),
    split: str = typer.Option("01", help="rMD17 split 1..5 (train_0k for training, test_0k for testing)."),
    n_train: int | None = typer.Option(
        None,
        "--n-train",
        help="Training frames drawn from the split's training part "
        "\\[default: all but the validation frames].",
    ),
    n_val: int | None = typer.Option(
        None,
        "--n-val",
        help="Validation frames: others of the split's training part, not trained on "
        f"\\[default: {PRETRAIN_N_VAL}].",
    ),
    max_epochs: int | None = typer.Option(
        None,
        "--max-epochs",
        help=f"Epochs to train; the cosine schedule spans them \\[default: {PRETRAIN_MAX_EPOCHS}].",
    ),
    max_minutes: float | None = typer.Option(
        None,
        "--max-minutes",
        help="Optional wall-clock budget in minutes: stops the run (recorded), never moves the schedule "
        "\\[default: none].",
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="TOML file of PretrainConfig settings, e.g. examples/quick.toml (options override).",
    ),
    name: RunNameOption = None,
    seed: int | None = typer.Option(None, help="Seed of the frame draw, initialisation and batch order."),
    device: str | None = choice(DEVICE_CHOICES, help="cpu, cuda (the current GPU) or cuda:N (GPU N)."),
    dtype: str | None = choice(DTYPE_CHOICES, help="The model's dtype."),
    labels: str = typer.Option(
        "rmd17",
        "--labels",
        help="rmd17: the dataset's own labels; md17: the original MD17 labels of the same frames "
        "(the surface they were sampled on), registered as dataset <name>-md17.",
    ),
    architecture: str | None = typer.Option(
        None,
        "--architecture",
        help="painn, schnet or mace (mace-torch's ScaleShiftMACE; small defaults in docs/models.md).",
    ),
    resume: str | None = typer.Option(
        None, help="Continue a pretrain run (id or name) from its last checkpoint."
    ),
    trust_code: TrustCodeOption = False,
) -> None:
    """Train a potential by energy + force MSE; report test energy and force errors."""
    from crmse_cli.stages.pretrain import pretrain
    from crmse_cli.train.pretrain import PretrainConfig
    from crmse_cli.train.pretrain_config import architecture_overrides

    st = state(ctx)
    set_threads(st.threads)
    overrides: dict[str, Any] = {
        "n_train": n_train,
        "n_val": n_val,
        "max_epochs": max_epochs,
        "max_minutes": max_minutes,
        "seed": seed,
        "device": device,
    }
    if resume is not None:
        # The run's own config continues; only budgets and the device may change.
        cfg = load_config(PretrainConfig, config) if config is not None else None
        if dtype is not None:
            overrides["model"] = {"dtype": dtype}
        ws = workspace(st, trust_code=trust_code)
        res = pretrain(ws, dataset=dataset, config=cfg, resume=resume, overrides=overrides)
    else:
        model = architecture_overrides(architecture, config)
        cfg = load_config(PretrainConfig, config, model__dtype=dtype, **model, **overrides)
        res = pretrain(st.workspace, dataset=dataset, split=split, config=cfg, name=name, labels=labels)
    emit_result(
        st,
        f"pretrain run {res.run_id}: test errors",
        res.metrics,
        run_id=res.run_id,
        checkpoint=str(res.checkpoint),
        epochs=res.epochs,
        best_epoch=res.best_epoch,
        stop_reason=res.stop_reason,
        n_train=res.n_train,
        n_val=res.n_val,
        wall_s=round(res.wall_s, 1),
    )


def register(app: typer.Typer) -> None:
    """Add this module's command to ``app``."""
    app.command("pretrain")(pretrain_command)
