"""Typed, frozen configs: load from TOML/JSON files in ``examples/``, dump to JSON, hash.

Each stage defines its own frozen dataclass next to its code (``ModelConfig``,
``PretrainConfig``, ...), every field documented with unit and default. This module holds the
generic machinery so that every stage loads, records and hashes configs the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from crmse_cli.errors import CrmseError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), sort_keys=True))


def config_hash(cfg: Any) -> str:
    """sha256 (first 16 hex digits) of the config's canonical JSON."""
    data = cfg if isinstance(cfg, dict) else to_dict(cfg)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def read_config_file(path: Path | str) -> dict[str, Any]:
    """Read a TOML or JSON config file into a dict."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CrmseError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CrmseError(
            f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 TOML or JSON"
        ) from exc
    try:
        if path.suffix == ".json":
            return dict(json.loads(text))
        return tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise CrmseError(
            f"config file {path} is not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}"
        ) from exc


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclasses are built recursively.

    Unknown keys are an error (a typo must not be silently ignored).
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(cls)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise CrmseError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        hint = hints[key]
        sub = _dataclass_in(hint)
        if sub is not None and isinstance(value, dict):
            kwargs[key] = from_dict(sub, value, f"{where}.{key}")
        elif isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise CrmseError(f"{where}: {exc}") from exc


def _dataclass_in(hint: Any) -> type | None:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        for arg in typing.get_args(hint):
            if dataclasses.is_dataclass(arg) and isinstance(arg, type):
                return arg
    return None


def load_config(cls: type[T], path: Path | str | None = None, **overrides: Any) -> T:
    """Defaults of ``cls``, updated by the file at ``path`` (if any), then by non-None overrides.

    Overrides use dotted keys for nested configs, written with ``__``: ``model__cutoff_A=4.0``.
    """
    data: dict[str, Any] = read_config_file(path) if path else {}
    for key, value in overrides.items():
        if value is None:
            continue
        node = data
        parts = key.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return from_dict(cls, data, where=str(path) if path else "config")
