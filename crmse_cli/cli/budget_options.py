"""The force-budget options of `crmse regularize` (``--force-budget`` and its screen's settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from crmse_cli.config import load_config, read_config_file, with_default
from crmse_cli.train.budget import BudgetConfig

PANEL = "Force budget"
"""The ``--help`` panel that lists these options."""


def _h(text: str, field: str) -> str:
    return with_default(text, BudgetConfig, field)


def _option(*param_decls: str, help: str) -> Any:
    """A force-budget option, listed in the "Force budget" panel."""
    return typer.Option(*param_decls, help=help, rich_help_panel=PANEL)


ForceBudgetOption = Annotated[
    float | None,
    _option(
        "--force-budget",
        help="Keep candidate checkpoints along the run, score each on the validation frames and a "
        "short stability screen, and return the most stable one whose validation force MAE is at most "
        "this much (relative, 0.10 = 10%) above the parent's \\[default: unset: no candidates].",
    ),
]
BudgetEveryOption = Annotated[
    int | None, _option("--budget-every", help=_h("Updates between candidates.", "budget_every"))
]
ScreenReplicasOption = Annotated[
    int | None,
    _option("--screen-replicas", help=_h("Replicas of each candidate's screen.", "screen_replicas")),
]
ScreenStepsOption = Annotated[
    int | None,
    _option("--screen-steps", help=_h("BAOAB steps of the screen (0.5 fs each).", "screen_steps")),
]
ScreenTemperatureOption = Annotated[
    float | None,
    _option("--screen-temperature-K", help="Temperature of the screen \\[default: --temperature-K]."),
]


def budget_options(
    force_budget: float | None,
    budget_every: int | None,
    screen_replicas: int | None,
    screen_steps: int | None,
    screen_temperature_K: float | None,
) -> dict[str, Any]:
    """The budget settings given on the command line (unset ones None)."""
    return {
        "force_budget": force_budget,
        "budget_every": budget_every,
        "screen_replicas": screen_replicas,
        "screen_steps": screen_steps,
        "screen_temperature_K": screen_temperature_K,
    }


def load_budget(path: Path | None, options: dict[str, Any]) -> BudgetConfig:
    """BudgetConfig from its defaults, the ``[budget]`` table of ``path`` (if it has one), the options."""
    has_table = path is not None and isinstance(read_config_file(path).get("budget"), dict)
    path = path if has_table else None
    return load_config(BudgetConfig, path, section="budget", siblings=("contrastive",), **options)
