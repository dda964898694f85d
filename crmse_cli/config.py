"""Typed, frozen configs: load from TOML/JSON files in ``examples/``, dump to JSON, hash.

Each stage defines its own frozen dataclass next to its code (``ModelConfig``,
``PretrainConfig``, ...), every field documented with unit and default. This module holds the
generic machinery so that every stage loads, records and hashes configs the same way.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from crmse_cli import settings
from crmse_cli.errors import CrmseError

T = TypeVar("T")

JsonDict = dict[str, Any]
"""A JSON object as recorded (a run's config, an artifact's meta, a checkpoint's plain values):
the one alias for payloads whose keys are read where their meaning is known."""


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
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise CrmseError(
            f"config file {path} is not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}"
        ) from exc
    if not isinstance(data, dict):  # JSON's top level may be a list, a number, a string
        raise CrmseError(
            f"config file {path} holds a JSON {type(data).__name__}, not an object; write the "
            'settings as {"key": value, ...}'
        )
    return data


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclasses are built recursively.

    A setting is named by its key (``lambda``, :func:`crmse_cli.settings.key`) or its field name
    (``lambda_``, as :func:`to_dict` records it). Unknown keys are an error (a typo must not be
    silently ignored).
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(cls)
    hints = typing.get_type_hints(cls)
    unknown = sorted(k for k in data if settings.field_name(cls, k) is None)
    if unknown:
        valid = sorted(settings.key(f.name) for f in dataclasses.fields(cls))
        raise CrmseError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    kwargs: dict[str, Any] = {}
    for written, value in data.items():
        key = settings.field_name(cls, written)
        assert key is not None  # checked above
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
    except (TypeError, ValueError, CrmseError) as exc:  # the checks of __post_init__
        raise CrmseError(f"{where}: {exc}") from exc


def _dataclass_in(hint: Any) -> type | None:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        for arg in typing.get_args(hint):
            if dataclasses.is_dataclass(arg) and isinstance(arg, type):
                return arg
    return None


def load_config(
    cls: type[T],
    path: Path | str | None = None,
    *,
    section: str | None = None,
    siblings: tuple[str, ...] = (),
    **overrides: Any,
) -> T:
    """The one way every command builds its settings: defaults, then the file, then the options.

    ``cls``'s defaults (declared once, in the dataclass) are updated by the TOML/JSON file at
    ``path`` (its ``[section]`` table when it has one, else the whole file; keys as
    :func:`crmse_cli.settings.key` spells them, ``lambda`` for ``lambda_``), then by the non-None
    ``overrides``: the options the user gave (None = unset), by field name, with dotted keys for
    nested configs written with ``__``: ``model__cutoff_A=4.0``.

    ``siblings`` names the other tables of the same file that the command reads with another call
    (regularize: ``[contrastive]`` and ``[budget]``); they are left alone here.

    Errors are a :class:`CrmseError` that blames what the user wrote: a key of the file outside
    ``[section]`` or a table the command does not read names the file and where the key belongs;
    a bad value of the file names the file; a bad option names the option as the user typed it
    (its field's :func:`crmse_cli.settings.flag`: ``--lambda``, ``--chains``).
    """
    data: dict[str, Any] = _file_settings(cls, path, section, siblings) if path else {}
    if path:
        from_dict(cls, copy.deepcopy(data), where=str(path))  # the file alone: its errors name it
    given = {key: value for key, value in overrides.items() if value is not None}
    for key, value in given.items():
        node = data
        parts = key.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    try:
        return from_dict(cls, data, where=str(path) if path else "options")
    except CrmseError as exc:
        raise _blame_option(exc, cls, given, path) from exc


def _file_settings(
    cls: type, path: Path | str, section: str | None, siblings: tuple[str, ...]
) -> dict[str, Any]:
    """The settings of the config file at ``path`` for ``cls``: its ``[section]`` table.

    A file with none of the command's tables (``section`` and ``siblings``, the tables the command
    reads elsewhere) is read whole. A file with one of them holds nothing else: a key above the
    tables (TOML's top level) or a table the command does not read would otherwise be ignored
    without a word (``lambda = 0.0`` above ``[contrastive]`` trained the default lambda).
    """
    data = read_config_file(path)
    tables = (section, *siblings) if section is not None else ()
    for name in tables:
        if name in data and not isinstance(data[name], dict):
            raise CrmseError(f"{path}: {name!r} must be the table [{name}], got {data[name]!r}")
    if section is None or not any(name in data for name in tables):
        table = data
    else:
        table = dict(data.get(section, {}))
        for key, value in data.items():
            if key in tables:
                continue
            if isinstance(value, dict):
                reads = ", ".join(f"[{name}]" for name in tables)
                raise CrmseError(
                    f"{path}: table [{key}] is not read by this command, which reads {reads}; "
                    f"move its settings under [{section}] or remove it"
                )
            if settings.field_name(cls, key) is not None:
                raise CrmseError(f"{path}: key {key!r} is outside [{section}]; put it under [{section}]")
            raise CrmseError(
                f"{path}: key {key!r} is outside [{section}] and is not one of its settings; remove it"
            )
    return table


def _blame_option(exc: CrmseError, cls: type, given: dict[str, Any], path: Path | str | None) -> CrmseError:
    """``exc`` (the settings with the options failed) as the user reads it: naming the option."""
    if exc.__cause__ is None:  # from_dict's own message (unknown keys) already names its source
        return exc
    shown = {}
    for name in given:
        owner, parts = cls, name.split("__")
        for part in parts[:-1]:  # model__dtype: the field dtype of the table model
            owner = typing.get_type_hints(owner)[part]
        shown[tuple(parts)] = settings.flag(owner, parts[-1])
    blamed = name_the_option(str(exc.__cause__), shown)
    if blamed is not None:
        return CrmseError(blamed)
    message = str(exc.__cause__)
    return CrmseError(f"{path} and the options given: {message}" if path else message)


def name_the_option(message: str, shown: dict[tuple[str, ...], str]) -> str | None:
    """``message`` of a check with the setting it names replaced by the user's spelling, or None.

    ``shown`` maps a setting's path of field names (``("model", "dtype")``) to what the user
    typed for it (``--dtype``, ``--set n_updates``). The checks name a setting by its key, with
    the table in front for a nested one (``model.dtype must be ...``).
    """
    for parts, spelt in shown.items():
        key = settings.key(parts[-1])
        for label in (".".join([*parts[:-1], key]), key, parts[-1]):
            if message.startswith(label + " "):
                return spelt + message[len(label) :]
    return None
