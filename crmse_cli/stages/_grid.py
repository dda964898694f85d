"""Settings of one sweep grid point: stage configs built from options given by field name.

Options are applied with ``dataclasses.replace`` on the stage's default config, so every field a
config gains later is a valid sweep option without a change here. A setting is named by its key
(:func:`crmse_cli.settings.key`: ``lambda``), as in a TOML file, or by its field name; a bad value
is blamed on ``--set KEY`` as the user typed it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from crmse_cli import settings
from crmse_cli.config import JsonDict, name_the_option
from crmse_cli.errors import CrmseError
from crmse_cli.sampling.sample_config import SampleConfig
from crmse_cli.stages.regularize_config import RegularizeConfig
from crmse_cli.train.budget import BudgetConfig
from crmse_cli.train.contrastive_config import ContrastiveConfig

GRID_KEYS = {"lambda_": "--lambda", "seed": "--seeds", "device": "--device"}
"""Settings the grid sets at every point (field -> the option that gives them)."""


def refuse_grid_keys(options: Mapping[str, object], option: str) -> None:
    """Refuse a ``--set`` / ``--sample-set`` of a setting the grid sets itself (it would be overridden)."""
    for key in options:
        field = key + "_" if key + "_" in GRID_KEYS else key
        if field in GRID_KEYS:
            raise CrmseError(
                f"{option} {key}=...: the grid sets {key} at every point; give it with {GRID_KEYS[field]}"
            )


def _by_field(cls: type, options: Mapping[str, object]) -> dict[str, tuple[str, object]]:
    """The ``options`` that name a setting of ``cls``: field name -> (key as typed, value)."""
    out: dict[str, tuple[str, object]] = {}
    for written, value in options.items():
        name = settings.field_name(cls, written)
        if name is not None and not settings.is_table(cls, name):
            out[name] = (written, value)
    return out


def _valid(*classes: type, but: tuple[str, ...] = ()) -> list[str]:
    names = {
        settings.key(f.name)
        for cls in classes
        for f in dataclasses.fields(cls)
        if not settings.is_table(cls, f.name) and f.name not in but
    }
    return sorted(names)


def _blamed(exc: CrmseError, given: Mapping[str, tuple[str, object]], option: str, what: str) -> CrmseError:
    """A bad value of ``option`` (``--set``) named as the user typed it: ``--set n_updates must ...``."""
    shown: dict[tuple[str, ...], str] = {
        (name,): f"{option} {written}" for name, (written, _) in given.items()
    }
    return CrmseError(name_the_option(str(exc), shown) or f"invalid {what} option: {exc}")


def regularize_config(
    options: Mapping[str, object], *, lambda_: float, seed: int, device: str, option: str = "--set"
) -> RegularizeConfig:
    """The RegularizeConfig of one grid point: defaults, replaced by ``options``, lambda and seed.

    ``options`` name ContrastiveConfig, BudgetConfig and RegularizeConfig settings by key or field
    name; an unknown one is an error that lists the valid ones, a bad value names ``option`` and
    the key.
    """
    classes = (ContrastiveConfig, BudgetConfig, RegularizeConfig)
    c_opts, b_opts, r_opts = (_by_field(cls, options) for cls in classes)
    r_opts.pop("device", None)  # the grid's (refuse_grid_keys)
    known = {written for part in (c_opts, b_opts, r_opts) for written, _ in part.values()}
    unknown = sorted(set(options) - known)
    if unknown:
        valid = ", ".join(_valid(*classes, but=("device",)))
        raise CrmseError(f"unknown regularize option(s) {', '.join(unknown)}; valid: {valid}")

    def values(part: Mapping[str, tuple[str, object]]) -> JsonDict:  # checked by the configs
        return {name: value for name, (_, value) in part.items()}

    try:
        contrastive = dataclasses.replace(
            ContrastiveConfig(), **{**values(c_opts), "lambda_": lambda_, "seed": seed}
        )
        budget = BudgetConfig(**values(b_opts))  # --set force_budget=0.1: the rule in every grid point
        return dataclasses.replace(
            RegularizeConfig(), contrastive=contrastive, budget=budget, device=device, **values(r_opts)
        )
    except CrmseError as exc:  # the checks of the settings (validate.ConfigError)
        raise _blamed(exc, {**c_opts, **b_opts, **r_opts}, option, "regularize") from exc


def sample_config(
    options: Mapping[str, object], *, seed: int, device: str, option: str = "--sample-set"
) -> SampleConfig:
    """The SampleConfig of one grid point: defaults replaced by ``options``, the seed and device."""
    given = _by_field(SampleConfig, options)
    unknown = sorted(set(options) - {written for written, _ in given.values()})
    given = {name: typed for name, typed in given.items() if name not in ("seed", "device")}  # the grid's
    if unknown:
        valid = ", ".join(_valid(SampleConfig, but=("seed", "device")))
        raise CrmseError(f"unknown sample option(s) {', '.join(unknown)}; valid: {valid}")
    try:
        values: JsonDict = {
            name: value for name, (_, value) in given.items()
        }  # checked by SampleConfig
        return dataclasses.replace(SampleConfig(), **values, seed=seed, device=device)
    except CrmseError as exc:
        raise _blamed(exc, given, option, "sample") from exc
