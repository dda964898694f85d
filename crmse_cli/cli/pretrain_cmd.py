"""`crmse pretrain`: MSE training of a GNN potential on a fetched dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from crmse_cli import settings
from crmse_cli.cli.common import RunNameOption, TrustCodeOption, emit_result, set_threads, state, workspace
from crmse_cli.cli.conventions import DEVICE_CHOICES, choice, setting_option, settings_given
from crmse_cli.config import load_config
from crmse_cli.model.config import ModelConfig
from crmse_cli.train.pretrain_config import PretrainConfig, architecture_overrides

P, M = PretrainConfig, ModelConfig


def pretrain_command(
    ctx: typer.Context,
    dataset: str | None = typer.Option(None, help="A fetched dataset, e.g. ethanol (see `crmse datasets`)."),
    split: str = typer.Option("01", help="rMD17 split 1..5 (train_0k for training, test_0k for testing)."),
    n_train: int | None = setting_option(P, "n_train"),
    n_val: int | None = setting_option(P, "n_val"),
    max_epochs: int | None = setting_option(P, "max_epochs"),
    max_minutes: float | None = setting_option(P, "max_minutes"),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="TOML file of PretrainConfig settings, e.g. examples/quick.toml (options override).",
    ),
    name: RunNameOption = None,
    seed: int | None = setting_option(P, "seed"),
    # a device is a word of DEVICE_CHOICES or cuda:N, which no fixed `choices` can declare
    device: str | None = choice(
        DEVICE_CHOICES, settings.declaration(P, "device"), help=settings.help_text(P, "device")
    ),
    dtype: str | None = setting_option(M, "dtype"),
    labels: str = typer.Option(
        "rmd17",
        "--labels",
        help="rmd17: the dataset's own labels; md17: the original MD17 labels of the same frames "
        "(the surface they were sampled on), registered as dataset <name>-md17.",
    ),
    architecture: str | None = setting_option(M, "architecture"),
    pair_repulsion: str | None = setting_option(M, "pair_repulsion"),
    resume: str | None = typer.Option(
        None, help="Continue a pretrain run (id or name) from its last checkpoint."
    ),
    trust_code: TrustCodeOption = False,
) -> None:
    """Train a potential by energy + force MSE; report test energy and force errors."""
    from crmse_cli.stages.pretrain import pretrain  # deferred: torch, only when the command runs

    st = state(ctx)
    set_threads(st.threads)
    given = settings_given(ctx.params, P)
    if resume is not None:
        # The run's own config continues; only budgets and the device may change.
        cfg = load_config(P, config) if config is not None else None
        overrides: dict[str, object] = dict(given)
        if dtype is not None:
            overrides["model"] = {"dtype": dtype}
        ws = workspace(st, trust_code=trust_code)
        res = pretrain(ws, dataset=dataset, config=cfg, resume=resume, overrides=overrides)
    else:
        model = architecture_overrides(architecture, config)
        cfg = load_config(
            P, config, model__dtype=dtype, model__pair_repulsion=pair_repulsion, **model, **given
        )
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
