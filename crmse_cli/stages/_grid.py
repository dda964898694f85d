"""Settings of one sweep grid point: stage configs built from options given by field name.

Options are applied with ``dataclasses.replace`` on the stage's default config, so every field a
config gains later is a valid sweep option without a change here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from crmse_cli.errors import CrmseError

GRID_KEYS = {"lambda_": "--lambda", "seed": "--seeds", "device": "--device"}
"""Settings the grid sets at every point (field -> the option that gives them)."""


def refuse_grid_keys(options: dict[str, Any], option: str) -> None:
    """Refuse a ``--set`` / ``--sample-set`` of a setting the grid sets itself (it would be overridden)."""
    for key in options:
        field = "lambda_" if key == "lambda" else key
        if field in GRID_KEYS:
            raise CrmseError(
                f"{option} {key}=...: the grid sets {key} at every point; give it with {GRID_KEYS[field]}"
            )


def _fields(cls: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(ContrastiveConfig, BudgetConfig, other RegularizeConfig fields) of ``options``.

    ``lambda`` is read as lambda_. Unknown names are an error that lists the valid ones.
    """
    from crmse_cli.stages.regularize import RegularizeConfig
    from crmse_cli.train.budget import BudgetConfig
    from crmse_cli.train.contrastive import ContrastiveConfig

    opts = {("lambda_" if k == "lambda" else k): v for k, v in options.items()}
    c_names, b_names = _fields(ContrastiveConfig), _fields(BudgetConfig)
    r_names = _fields(RegularizeConfig) - {"contrastive", "budget", "device"}
    unknown = sorted(set(opts) - c_names - b_names - r_names)
    if unknown:
        valid = ", ".join(sorted(c_names | b_names | r_names))
        raise CrmseError(f"unknown regularize option(s) {', '.join(unknown)}; valid: {valid}")

    def pick(names: set[str]) -> dict[str, Any]:
        return {k: v for k, v in opts.items() if k in names}

    return pick(c_names), pick(b_names), pick(r_names)


def regularize_config(options: dict[str, Any], *, lambda_: float, seed: int, device: str) -> Any:
    """The RegularizeConfig of one grid point: defaults, replaced by ``options``, lambda and seed."""
    from crmse_cli.stages.regularize import RegularizeConfig
    from crmse_cli.train.budget import BudgetConfig
    from crmse_cli.train.contrastive import ContrastiveConfig

    c_opts, b_opts, r_opts = split_options(options)
    try:
        contrastive = dataclasses.replace(ContrastiveConfig(), **{**c_opts, "lambda_": lambda_, "seed": seed})
        budget = BudgetConfig(**b_opts)  # --set force_budget=0.1: the rule in every grid point
        return dataclasses.replace(
            RegularizeConfig(), contrastive=contrastive, budget=budget, device=device, **r_opts
        )
    except (TypeError, ValueError) as exc:
        raise CrmseError(f"invalid regularize option: {exc}") from exc


def sample_config(options: dict[str, Any], *, seed: int, device: str) -> Any:
    """The SampleConfig of one grid point: defaults replaced by ``options``, the seed and device."""
    from crmse_cli.stages.sample import SampleConfig

    unknown = sorted(set(options) - _fields(SampleConfig) - {"seed", "device"})
    if unknown:
        valid = ", ".join(sorted(_fields(SampleConfig) - {"seed", "device"}))
        raise CrmseError(f"unknown sample option(s) {', '.join(unknown)}; valid: {valid}")
    try:
        return dataclasses.replace(SampleConfig(), **{**options, "seed": seed, "device": device})
    except (TypeError, ValueError) as exc:
        raise CrmseError(f"invalid sample option: {exc}") from exc
