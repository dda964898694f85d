"""Validation of every numeric setting, in one place, before any run row exists.

Each config dataclass calls :func:`check_config` from its ``__post_init__``. The check reads
the field's type hint (an ``int`` must be an integer, not 2.5 and not ``true``; a ``float`` must
be a finite number: NaN and infinities are never accepted) and the field's range from
:data:`RANGES`, the one table of allowed ranges, keyed by class and field name. A field the
table does not list still gets the type and finiteness checks, so a new setting is never
unchecked. CLI options reach the library through these dataclasses, so the same rules hold
for options, config files (TOML/JSON) and the library.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from functools import cache
from typing import Any

from crmse_cli.errors import CrmseError


class ConfigError(CrmseError, ValueError):
    """A setting of a config has the wrong type or lies outside its range.

    Also a ``ValueError``, so callers that wrap ``ValueError`` from a dataclass constructor
    (``config.from_dict`` adds the file name) keep working.
    """


MAX_TEMPERATURE_K = 1.0e5
"""Highest accepted temperature: far above any molecular simulation, far below overflow."""
MAX_SEED = 2**63 - 1
MAX_XTB_FRAMES = 10**6
"""Most frames of one ``fetch xtb`` generation: a million GFN2 frames of a small molecule take
days of one core and gigabytes in memory; more is a typo (``--frames 1e15`` ran without end)."""

RANGES: dict[str, dict[str, str]] = {
    "ModelConfig": {
        "features": "[1, 100000]",
        "layers": "[1, 1000]",
        "n_rbf": "[1, 100000]",
        "cutoff_A": "(0, 1000]",
        "envelope_p": "[2, 1000]",
    },
    "PretrainConfig": {
        "n_train": "[1, 1e12]",
        "n_val": "[1, 1e12]",
        "val_fraction": "(0, 0.5]",
        "batch_size": "[1, 1e9]",
        "lr": "(0, 1e3]",
        "lr_min": "[0, 1e3]",
        "plateau_factor": "(0, 1)",
        "plateau_patience": "[0, 1e12]",
        "early_stopping_patience": "[0, 1e12]",
        "max_epochs": "[1, 1e12]",
        "max_minutes": "[0, 1e9]",
        "grad_clip": "[0, 1e300]",
        "ema_decay": "[0, 1)",
        "energy_weight": "[0, 1e300]",
        "force_weight": "[0, 1e300]",
        "seed": f"[0, {MAX_SEED}]",
    },
    "ContrastiveConfig": {
        "lambda_": "[0, 1e6]",
        "eta_A2": "(0, 100]",
        "steps_per_update": "[1, 1e9]",
        "n_chains": "[1, 1e6]",
        "n_updates": "[1, 1e12]",
        "temperature_K": f"(0, {MAX_TEMPERATURE_K}]",
        "chain_temperature_K": f"(0, {MAX_TEMPERATURE_K}]",
        "lr": "(0, 1e3]",
        "warmup_updates": "[0, 1e12]",
        "tconf_every": "[0, 1e12]",
        "batch_size": "[1, 1e9]",
        "energy_weight": "[0, 1e300]",
        "force_weight": "[0, 1e300]",
        "reset_fraction": "[0, 1]",
        "fly_apart_A": "(0, 1e6]",
        "grad_clip": "[0, 1e300]",
        "seed": f"[0, {MAX_SEED}]",
        "ema_decay": "[0, 1)",
        "lambda_decay_after": "[0, 1e12]",
        "lambda_decay_threshold": "[0, 1]",
        "lambda_decay_updates": "[1, 1e12]",
        "lambda_control_up": "[1, 1e3]",
        "lambda_control_down": "[1, 1e3]",
        "lambda_control_range": "[1, 1e12]",
    },
    "RegularizeConfig": {
        "val_every": "[1, 1e12]",
        "checkpoint_every": "[1, 1e12]",
        "chains_every": "[1, 1e12]",
    },
    "BudgetConfig": {
        "force_budget": "(0, 10]",
        "budget_every": "[1, 1e12]",
        "screen_replicas": "[1, 1e6]",
        "screen_steps": "[1, 1e12]",
        "screen_temperature_K": f"(0, {MAX_TEMPERATURE_K}]",
    },
    "DiagnoseConfig": {
        "soft_modes": "[1, 1e6]",
        "stiff_modes": "[1, 1e6]",
        "temperature_K": f"(0, {MAX_TEMPERATURE_K}]",
        "max_test_frames": "[1, 1e12]",
        "max_collapsed_frames": "[1, 1e12]",
        "fmax": "(0, 1e6]",
        "seed": f"[0, {MAX_SEED}]",
    },
    "StabilizeConfig": {
        "force_budget": "(0, 10]",
        "temperature_K": f"(0, {MAX_TEMPERATURE_K}]",
        "replicas": "[1, 1e6]",
        "steps": "[1, 1e12]",
        "record_every": "[1, 1e12]",
        "updates": "[1, 1e12]",
        "budget_every": "[1, 1e12]",
        "screen_replicas": "[1, 1e6]",
        "screen_steps": "[1, 1e12]",
        "seed": f"[0, {MAX_SEED}]",
        "processes": "[1, 1024]",
    },
    "SampleConfig": {
        "temperature_K": f"(0, {MAX_TEMPERATURE_K}]",
        "timestep_fs": "(0, 100]",
        "friction_per_fs": "[0, 1e6]",
        "eta_A2": "(0, 100]",
        "replicas": "[1, 1e6]",
        "steps": "[1, 1e12]",
        "record_every": "[1, 1e12]",
        "check_every": "[1, 1e12]",
        "seed": f"[0, {MAX_SEED}]",
        "processes": "[1, 1024]",
    },
    "XtbMDConfig": {
        "temperature_K": f"(0, {MAX_TEMPERATURE_K}]",
        "frames": f"[3, {MAX_XTB_FRAMES}]",
        "timestep_fs": "(0, 100]",
        "friction_per_fs": "[0, 1e6]",
        "equilibration_ps": "[0, 1e5]",
        "stride": "[1, 1e6]",
        "replicas": f"[1, {MAX_XTB_FRAMES}]",
        "seed": f"[0, {MAX_SEED}]",
        "checkpoint_every_s": "[0, 1e9]",
    },
    "options": {  # arguments of library functions that have no config dataclass
        "--seed": f"[0, {MAX_SEED}]",
        "--split-seed": f"[0, {MAX_SEED}]",
        "--test-fraction": "(0, 1)",
        "--threads": "[1, 4096]",
        "--stale-after-s": "(0, 1e12]",  # and above twice the heartbeat: stages/sweep.py
        "--processes": "[1, 1024]",  # worker processes of `fetch xtb` / `reproduce`
    },
}
"""Allowed range of each numeric field: "[lo, hi]" closed, "(lo, hi)" open, mixed as needed."""

OPTION_TYPES: dict[str, Any] = {
    "--seed": int,
    "--split-seed": int,
    "--test-fraction": float,
    "--threads": int,
    "--stale-after-s": float,
    "--processes": int,
}

OPTION_NAMES = {"lambda_": "lambda"}
"""Field names shown to users under another name (``lambda_`` is ``--lambda`` / ``lambda``)."""


@dataclasses.dataclass(frozen=True)
class Range:
    """An interval; ``lo_open`` / ``hi_open`` exclude the end points."""

    lo: float
    hi: float
    lo_open: bool
    hi_open: bool

    @classmethod
    def parse(cls, text: str) -> Range:
        """A range from its text, e.g. ``(0, inf)`` or ``[0, 1]``."""
        text = text.strip()
        lo, hi = (float(part) for part in text[1:-1].split(","))
        return cls(lo, hi, text[0] == "(", text[-1] == ")")

    def __contains__(self, value: float) -> bool:
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    def describe(self) -> str:
        """The range as the user reads it in an error."""

        def fmt(x: float) -> str:
            return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:g}"

        if self.lo == 0 and self.hi >= 1e12:
            return "> 0" if self.lo_open else ">= 0"
        if self.hi >= 1e12:
            return f"> {fmt(self.lo)}" if self.lo_open else f">= {fmt(self.lo)}"
        left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
        return f"in {left}{fmt(self.lo)}, {fmt(self.hi)}{right}"


@cache
def _range(cls_name: str, field: str) -> Range | None:
    spec = RANGES.get(cls_name, {}).get(field)
    return Range.parse(spec) if spec else None


def _kinds(hint: Any) -> tuple[set[type], bool]:
    """The plain types a hint allows and whether None is allowed."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = typing.get_args(hint)
        return {a for a in args if a is not type(None)}, type(None) in args
    return {hint}, False


def check_value(name: str, value: Any, hint: Any, allowed: Range | None = None) -> None:
    """Refuse ``value`` unless it has the type of ``hint`` and lies in ``allowed``.

    Raises:
        ConfigError: one line naming the setting, the value and what is expected.
    """
    kinds, optional = _kinds(hint)
    if value is None:
        if optional:
            return
        raise ConfigError(f"{name} must be set, got None")
    if int in kinds and float not in kinds:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
    elif float in kinds:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
    elif bool in kinds and not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    elif str in kinds and not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    else:
        for kind in kinds:
            if dataclasses.is_dataclass(kind) and not isinstance(value, kind):
                raise ConfigError(f"{name} must be a table of {kind.__name__} settings, got {value!r}")
        return
    if allowed is not None and isinstance(value, numbers.Real) and float(value) not in allowed:
        raise ConfigError(f"{name} must be {allowed.describe()}, got {value!r}")


def check_config(cfg: Any, *, prefix: str = "") -> None:
    """Check every field of config dataclass ``cfg`` (types, finiteness, :data:`RANGES`).

    Args:
        cfg: a dataclass instance (called from its ``__post_init__``).
        prefix: shown before field names, e.g. ``"model."``.

    Raises:
        ConfigError: for the first field that is wrong.
    """
    cls = type(cfg)
    hints = _hints(cls)
    for field in dataclasses.fields(cfg):
        label = prefix + OPTION_NAMES.get(field.name, field.name)
        check_value(label, getattr(cfg, field.name), hints[field.name], _range(cls.__name__, field.name))


def check_field(name: str, value: Any, cls: type, field: str) -> None:
    """Check ``value``, given as ``name``, as field ``field`` of config class ``cls`` would be.

    For a list option whose every item becomes one config's field (``sweep create --lambda
    0,0.1``: one ``ContrastiveConfig.lambda_`` per item): the type and :data:`RANGES` apply.
    """
    check_value(name, value, _hints(cls)[field], _range(cls.__name__, field))


def check_option(name: str, value: Any) -> None:
    """Check a plain argument listed under ``RANGES["options"]`` (e.g. ``"--seed"``)."""
    check_value(name, value, OPTION_TYPES[name], _range("options", name))


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


__all__ = ["RANGES", "ConfigError", "Range", "check_config", "check_field", "check_option", "check_value"]
