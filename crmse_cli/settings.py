"""Each setting declared once, on its config dataclass field: default, range, flag, help.

A config field is written ``replicas: int = setting(64, range="[1, 1e6]", help="Replicas ...")``.
Everything else reads that one declaration:

* validation (:func:`crmse_cli.validate.check_config`): the type hint, the ``range`` of a number,
  the ``choices`` of a word;
* the TOML/JSON keys and ``sweep --set`` keys: the field's :func:`key` (its name without a
  trailing ``_``: ``lambda_`` is ``lambda``); :func:`crmse_cli.config.from_dict` takes both;
* the command line: :func:`flag` (``--`` and the key with dashes, or the alias the field records,
  e.g. ``--chains`` for ``n_chains``) and :func:`help_text` (the help and the default), which
  :func:`crmse_cli.cli.conventions.setting_option` turns into a Typer option. ``cli=False``
  marks a setting the command reads from its config file only (no option: no flag explosion);
* error messages: a bad value is blamed on the flag, the file or the ``--set`` key the user wrote.

Torch-free and import-light: the CLI's ``--help`` reads it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

_META = "crmse.setting"


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


@dataclasses.dataclass(frozen=True)
class Setting:
    """The declaration of one setting (the metadata of its dataclass field).

    Attributes:
        help: one line for ``--help`` (the default is appended by :func:`help_text`).
        range: allowed interval of a number ("[lo, hi]" closed, "(lo, hi)" open, mixed as needed).
        choices: allowed values of a word (None: any text, e.g. a device or a method name
            checked by its own rule), read from :attr:`choices_from` each time.
        flag: the option's name where it is not ``--`` + the key with dashes (``--chains``); a
            switch may give its off form too (``--lc-beta/--no-lc-beta``).
        unset: what None means, shown as the default in ``--help`` (``the pretrain run's``).
        cli: False for a setting read from the command's config file only (no option).
        panel: the ``--help`` panel that lists the option (None: "Options").
        choices_from: the values as declared: a tuple, or a function that lists them (a
            registry, e.g. :func:`crmse_cli.sampling.kinds.sampler_names`: a sampler registered
            later is accepted by validation and by the option alike).
    """

    help: str
    range: Range | None = None
    flag: str | None = None
    unset: str | None = None
    cli: bool = True
    panel: str | None = None
    choices_from: tuple[str, ...] | Callable[[], Iterable[str]] | None = None

    @property
    def choices(self) -> tuple[str, ...] | None:
        """The allowed values now (None: any text)."""
        source = self.choices_from
        if source is None:
            return None
        return tuple(source() if callable(source) else source)


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    range: str | None = None,
    choices: Iterable[str] | Callable[[], Iterable[str]] | None = None,
    flag: str | None = None,
    unset: str | None = None,
    cli: bool = True,
    panel: str | None = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field that declares a setting (see :class:`Setting`; ``factory`` for a table).

    ``choices`` is the values or a function listing them (asked at each check: a registry).
    """
    meta = {
        _META: Setting(
            help=help,
            range=Range.parse(range) if range else None,
            choices_from=choices if choices is None or callable(choices) else tuple(choices),
            flag=flag,
            unset=unset,
            cli=cli,
            panel=panel,
        )
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def declared(f: dataclasses.Field[Any]) -> Setting | None:
    """The declaration of field ``f``, None when it has none."""
    value = f.metadata.get(_META)
    return value if isinstance(value, Setting) else None


def _field(cls: type, name: str) -> dataclasses.Field[Any]:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def spec(cls: type, name: str) -> Setting:
    """The declaration of ``cls``'s field ``name``; TypeError when the field declares none."""
    found = declared(_field(cls, name))
    if found is None:
        raise TypeError(f"{cls.__name__}.{name} is not declared with crmse_cli.settings.setting(...)")
    return found


def key(name: str) -> str:
    """The name users write for field ``name`` (TOML key, ``--set`` key): ``lambda_`` -> ``lambda``."""
    return name.rstrip("_")


def field_name(cls: type, written: str) -> str | None:
    """The field of ``cls`` that the user's key ``written`` names (its key or field name), or None."""
    for f in dataclasses.fields(cls):
        if written in (f.name, key(f.name)):
            return f.name
    return None


def declaration(cls: type, name: str) -> str:
    """The option's declaration for Typer: :func:`flag`, or a switch's ``--x/--no-x``."""
    return spec(cls, name).flag or "--" + key(name).replace("_", "-")


def flag(cls: type, name: str) -> str:
    """The command-line option of ``cls``'s field ``name``: its alias, else ``--`` + key with dashes."""
    return declaration(cls, name).split("/")[0]


def default_of(cls: type, name: str) -> Any:
    """The default of dataclass ``cls``'s field ``name``."""
    f = _field(cls, name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise KeyError(f"{cls.__name__}.{name} has no default")


def help_text(cls: type, name: str) -> str:
    """``--help`` of ``cls``'s field ``name``: its help followed by ``[default: X]``."""
    s = spec(cls, name)
    value = default_of(cls, name)
    if value is None:
        shown = s.unset or "unset"
    elif isinstance(value, bool):
        shown = "on" if value else "off"
    else:
        shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{s.help} \\[default: {shown}]"  # escaped: Typer reads help as rich markup


def is_table(cls: type, name: str) -> bool:
    """Whether field ``name`` of ``cls`` holds a nested config (a TOML table), not a setting."""
    import typing

    hint = typing.get_type_hints(cls)[name]
    return dataclasses.is_dataclass(hint)


def undeclared(cls: type) -> list[str]:
    """What is missing from the declarations of config class ``cls`` (empty: all declared).

    Every field that is not a nested table must be a :func:`setting` with a help line and a
    flag; a number needs its range (a word's choices are optional: a device or an xTB method
    name is checked by its own rule).
    """
    import typing

    hints = typing.get_type_hints(cls)
    missing: list[str] = []
    for f in dataclasses.fields(cls):
        if is_table(cls, f.name):
            continue
        s = declared(f)
        where = f"{cls.__name__}.{f.name}"
        if s is None:
            missing.append(f"{where}: no setting(...) declaration")
            continue
        if not s.help.strip():
            missing.append(f"{where}: no help")
        kinds = set(typing.get_args(hints[f.name])) or {hints[f.name]}
        numeric = bool(kinds & {int, float}) and bool not in kinds
        if numeric and s.range is None:
            missing.append(f"{where}: a number without a range")
        if not (flag(cls, f.name).startswith("--") and len(flag(cls, f.name)) > 2):
            missing.append(f"{where}: no flag")
    return missing
