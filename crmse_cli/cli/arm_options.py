"""The study-arm options of `crmse regularize` (docs/method.md, "Study arms").

Each option sets the ContrastiveConfig field of the same name (``--chain-source`` ->
``chain_source``); the defaults, and so the help's, are the dataclass's: today's behaviour.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from crmse_cli.cli.conventions import choice
from crmse_cli.config import with_default
from crmse_cli.train.contrastive_config import CHAIN_SOURCES, OPTIMIZER_INITS, POSITIVES, ContrastiveConfig
from crmse_cli.train.lambda_schedule import LAMBDA_CONTROLS

PANEL = "Study arms"
"""The ``--help`` panel that lists these options."""


def _h(text: str, field: str) -> str:
    return with_default(text, ContrastiveConfig, field)


def _option(*param_decls: str, help: str) -> Any:
    """A study-arm option that takes a number, listed in the "Study arms" panel."""
    return typer.Option(*param_decls, help=help, rich_help_panel=PANEL)


def _choice(values: tuple[str, ...], *param_decls: str, help: str) -> Any:
    """A study-arm option that takes one of ``values``, listed in the "Study arms" panel."""
    return choice(values, *param_decls, help=help, rich_help_panel=PANEL, annotated=True)


ChainSourceOption = Annotated[
    str | None,
    _choice(
        CHAIN_SOURCES,
        "--chain-source",
        help=_h(
            "model: persistent chains sampled from the model; data: the null arm, fresh random "
            "positives as negatives every update (no sampling, L_C of zero mean).",
            "chain_source",
        ),
    ),
]
PositivesOption = Annotated[
    str | None,
    _choice(
        POSITIVES,
        "--positives",
        help=_h(
            "Data term of L_C: labelled (the L_MSE frames) or split (every position of the split's "
            "training part less the validation frames; L_MSE stays on the labelled).",
            "positives",
        ),
    ),
]
OptimizerInitOption = Annotated[
    str | None,
    _choice(
        OPTIMIZER_INITS,
        "--optimizer-init",
        help=_h("With --init raw: inherit the parent's Adam moments, or a fresh Adam.", "optimizer_init"),
    ),
]
EmaDecayOption = Annotated[
    float | None,
    _option(
        "--ema-decay",
        help=_h("EMA of the weights (0 = off); validation, test and saved models use it.", "ema_decay"),
    ),
]
LambdaDecayAfterOption = Annotated[
    int | None,
    _option(
        "--lambda-decay-after",
        help=_h(
            "Decay lambda linearly to 0 once chains_outside stayed <= --lambda-decay-threshold for "
            "this many updates (0 = never).",
            "lambda_decay_after",
        ),
    ),
]
LambdaDecayThresholdOption = Annotated[
    float | None,
    _option(
        "--lambda-decay-threshold",
        help=_h("Outside-support share counted as repaired.", "lambda_decay_threshold"),
    ),
]
LambdaDecayUpdatesOption = Annotated[
    int | None,
    _option(
        "--lambda-decay-updates", help=_h("Updates of the linear decay to 0.", "lambda_decay_updates")
    ),
]
LambdaControlOption = Annotated[
    str | None,
    _choice(
        LAMBDA_CONTROLS,
        "--lambda-control",
        help=_h(
            "fixed, or budget: after each validation lambda goes up while the validation force MAE "
            "is within --force-budget of the parent's, down when over.",
            "lambda_control",
        ),
    ),
]
LambdaControlUpOption = Annotated[
    float | None,
    _option("--lambda-control-up", help=_h("Budget mode: factor under budget.", "lambda_control_up")),
]
LambdaControlDownOption = Annotated[
    float | None,
    _option(
        "--lambda-control-down", help=_h("Budget mode: divisor over budget.", "lambda_control_down")
    ),
]
LambdaControlRangeOption = Annotated[
    float | None,
    _option(
        "--lambda-control-range",
        help=_h("Budget mode: lambda stays within this factor of --lambda.", "lambda_control_range"),
    ),
]


def arm_options(
    chain_source: str | None,
    positives: str | None,
    optimizer_init: str | None,
    ema_decay: float | None,
    lambda_decay_after: int | None,
    lambda_decay_threshold: float | None,
    lambda_decay_updates: int | None,
    lambda_control: str | None,
    lambda_control_up: float | None,
    lambda_control_down: float | None,
    lambda_control_range: float | None,
) -> dict[str, Any]:
    """The study-arm settings given on the command line, by field name (unset ones None)."""
    return {
        "chain_source": chain_source,
        "positives": positives,
        "optimizer_init": optimizer_init,
        "ema_decay": ema_decay,
        "lambda_decay_after": lambda_decay_after,
        "lambda_decay_threshold": lambda_decay_threshold,
        "lambda_decay_updates": lambda_decay_updates,
        "lambda_control": lambda_control,
        "lambda_control_up": lambda_control_up,
        "lambda_control_down": lambda_control_down,
        "lambda_control_range": lambda_control_range,
    }
