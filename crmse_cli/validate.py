"""Validation of every setting, in one place, before any run row exists.

Each config dataclass calls :func:`check_config` from its ``__post_init__``. The check reads
the field's type hint (an ``int`` must be an integer, not 2.5 and not ``true``; a ``float`` must
be a finite number: NaN and infinities are never accepted) and the field's declaration
(:func:`crmse_cli.settings.setting`: the ``range`` of a number, the ``choices`` of a word). A
field without a declaration is refused when the class is built, so a new setting is never
unchecked. CLI options, config files (TOML/JSON), ``sweep --set`` and the library all build these
dataclasses, so the same rules hold for each.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from typing import Any

from crmse_cli.errors import CrmseError
from crmse_cli.settings import Range, declared, key


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

TEMPERATURE_RANGE = f"(0, {MAX_TEMPERATURE_K}]"
"""Range of every temperature setting, K."""
SEED_RANGE = f"[0, {MAX_SEED}]"
"""Range of every seed."""
COUNT_RANGE = "[1, 1e12]"
"""Range of a count of steps, updates, epochs or frames (at least one; more than 1e12 is a typo)."""
PROCESSES_RANGE = "[1, 1024]"
"""Range of worker processes."""

OPTION_RANGES: dict[str, str] = {  # arguments of library functions that have no config dataclass
    "--seed": SEED_RANGE,
    "--split-seed": SEED_RANGE,
    "--test-fraction": "(0, 1)",
    "--threads": "[1, 4096]",
    "--stale-after-s": "(0, 1e12]",  # and above twice the heartbeat: stages/sweep.py
    "--processes": PROCESSES_RANGE,  # worker processes of `fetch xtb` / `reproduce`
}
"""Allowed range of each plain numeric argument: "[lo, hi]" closed, "(lo, hi)" open."""

OPTION_TYPES: dict[str, Any] = {
    "--seed": int,
    "--split-seed": int,
    "--test-fraction": float,
    "--threads": int,
    "--stale-after-s": float,
    "--processes": int,
}


def _kinds(hint: Any) -> tuple[set[type], bool]:
    """The plain types a hint allows and whether None is allowed."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = typing.get_args(hint)
        return {a for a in args if a is not type(None)}, type(None) in args
    return {hint}, False


def check_value(
    name: str, value: Any, hint: Any, allowed: Range | None = None, choices: tuple[str, ...] | None = None
) -> None:
    """Refuse ``value`` unless it has the type of ``hint`` and lies in ``allowed`` / ``choices``.

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
    elif str in kinds:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        if choices is not None and value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return
    else:
        for kind in kinds:
            if dataclasses.is_dataclass(kind) and not isinstance(value, kind):
                raise ConfigError(f"{name} must be a table of {kind.__name__} settings, got {value!r}")
        return
    if allowed is not None and isinstance(value, numbers.Real) and float(value) not in allowed:
        raise ConfigError(f"{name} must be {allowed.describe()}, got {value!r}")


def check_config(cfg: Any, *, prefix: str = "") -> None:
    """Check every field of config dataclass ``cfg`` against its declaration (type, range, choices).

    Args:
        cfg: a dataclass instance (called from its ``__post_init__``).
        prefix: shown before the settings' keys, e.g. ``"model."``.

    Raises:
        ConfigError: for the first field that is wrong, named by its key (``lambda``).
        TypeError: a field that is neither a nested config nor declared with ``setting(...)``
            (a programming error: every setting is declared once, on its field).
    """
    cls = type(cfg)
    hints = _hints(cls)
    for field in dataclasses.fields(cfg):
        s = declared(field)
        if s is None and not dataclasses.is_dataclass(hints[field.name]):
            raise TypeError(
                f"{cls.__name__}.{field.name} is not declared with crmse_cli.settings.setting(...)"
            )
        label = prefix + key(field.name)
        rng, choices = (s.range, s.choices) if s is not None else (None, None)
        check_value(label, getattr(cfg, field.name), hints[field.name], rng, choices)


def check_field(name: str, value: Any, cls: type, field: str) -> None:
    """Check ``value``, given as ``name``, as field ``field`` of config class ``cls`` would be.

    For a list option whose every item becomes one config's field (``sweep create --lambda
    0,0.1``: one ``ContrastiveConfig.lambda_`` per item): the type and the declaration apply.
    """
    f = next(f for f in dataclasses.fields(cls) if f.name == field)
    s = declared(f)
    check_value(name, value, _hints(cls)[field], s.range if s else None, s.choices if s else None)


def check_option(name: str, value: Any) -> None:
    """Check a plain argument listed in :data:`OPTION_RANGES` (e.g. ``"--seed"``)."""
    check_value(name, value, OPTION_TYPES[name], Range.parse(OPTION_RANGES[name]))


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


__all__ = [
    "OPTION_RANGES",
    "ConfigError",
    "Range",
    "check_config",
    "check_field",
    "check_option",
    "check_value",
]
