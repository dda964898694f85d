"""The command-line conventions a click/Typer user expects, set in one place.

* ``--help`` shows click's value names: nothing after a flag (``--json``, not ``--json <bool>``),
  ``FLOAT``, ``INTEGER``, ``TEXT``, ``PATH`` after an option that takes a value, and
  ``[a|b|c]`` after an option with a fixed set of values. Typer 0.29's rich help prints a
  ``<type>`` after every parameter, flags included, which reads as if ``--json`` took a value
  (``crmse --json true runs`` then fails); :func:`use_click_metavars` replaces that display.
* An option with a fixed set of values is declared with :func:`choice`, from the tuple that
  defines the values (``STARTS``...) or the function that lists them (``chain_sampler_names``:
  the sampler registry, asked again for each value parsed and each ``--help`` shown, so a sampler
  registered later is accepted and listed): shown ``[ula|mala]``, and any other value is a usage
  error (exit 2) naming the valid ones. Its default stays None (unset), so the config file or the
  config dataclass decides (:func:`crmse_cli.config.load_config`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import typer
from typer.core import TyperArgument, TyperOption

from crmse_cli import settings

_LABELS = {int: "INTEGER", float: "FLOAT", str: "TEXT", bool: "BOOLEAN"}

DEVICE_CHOICES = ("cpu", "cuda", "cuda:N")
"""What ``--device`` takes: the CPU, the current CUDA device, or CUDA device N."""
_CUDA_N = re.compile(r"cuda:\d+")


def _display_type(param: TyperOption | TyperArgument, ctx: object) -> str | None:
    """Click's value name of ``param`` (None for a flag): ``FLOAT``, ``PATH``, ``[a|b]``..."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    desc = getattr(param, "type_descriptor", None)
    parser = getattr(getattr(desc, "parameter_info", None), "parser", None)
    listed = getattr(parser, "choices", None)
    if callable(listed):  # a :func:`choice`: its values as of now
        return "[" + "|".join(listed()) + "]"
    if param.param_type_name == "option" and param.metavar is not None:
        return str(param.metavar)  # arguments use metavar as their name; options as their value
    if desc is None:  # pragma: no cover - a parameter Typer did not build
        return None
    if desc.is_choice:
        from typer._param_types import choice_as_str

        label = "[" + "|".join(choice_as_str(c) for c in desc.choices or ()) + "]"
    elif desc.is_path:
        label = "PATH"
    else:
        annotation = desc.annotation
        if desc.is_list:
            annotation = (getattr(annotation, "__args__", None) or (str,))[0]
        label = _LABELS.get(annotation, getattr(annotation, "__name__", "VALUE").upper())
    return f"{label}..." if param.nargs != 1 or desc.is_list else label


def use_click_metavars() -> None:
    """Show click's value names in every ``--help`` (see the module's docstring).

    Typer has no setting for it, so this replaces the one method its help (rich and plain) asks
    for the text after a parameter's name. Idempotent; called when the app is built.
    """
    for cls in (TyperOption, TyperArgument):
        cls.display_type_rich = _display_type  # type: ignore[method-assign,assignment]


def choice(
    values: Iterable[str] | Callable[[], Iterable[str]],
    *param_decls: str,
    help: str,
    hidden: Iterable[str] = (),
    default: object = None,
    rich_help_panel: str | None = None,
    annotated: bool = False,
) -> Any:
    """A ``typer.Option`` taking one of ``values``: shown ``[a|b|c]``, others refused with exit 2.

    Args:
        values: the valid values, in the order the help lists them (the tuple that defines them),
            or a function returning them, asked again for each value parsed and each ``--help``
            shown (a registry).
        param_decls: the option's names, e.g. ``"--chain-sampler"`` (default: the parameter's).
        help: the help text.
        hidden: values accepted but not listed (test presets).
        default: the value when the option is not given; None (unset) lets the config decide,
            ``...`` makes the option required.
        rich_help_panel: the ``--help`` panel the option is listed in.
        annotated: for ``Annotated[str | None, choice(...)]``, where the parameter's ``= value``
            is the default (``default`` is then ignored).
    """

    def listed() -> tuple[str, ...]:
        return tuple(values() if callable(values) else values)

    shown = listed()
    if not callable(values):
        values = shown  # an iterator is read once
    patterns = [_CUDA_N] if "cuda:N" in shown else []

    def parse(value: str) -> str:
        now = listed()
        if value in now + tuple(hidden) or any(p.fullmatch(value) for p in patterns):
            return value
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(now)}")

    # --help asks the list when it is shown (_display_type), not when the command module is
    # imported: a sampler registered, or unregistered, after the app was built shows as it is now.
    parse.choices = listed  # type: ignore[attr-defined]
    first: tuple[Any, ...] = () if annotated else (default,)  # Typer types an option's default Any
    return typer.Option(
        *first,
        *param_decls,
        parser=parse,
        help=help,
        rich_help_panel=rich_help_panel,
    )


def setting_option(cls: type, name: str, *, annotated: bool = False) -> Any:
    """The ``typer.Option`` of config ``cls``'s field ``name``, read from its declaration.

    Its flag (:func:`crmse_cli.settings.flag`), help with the dataclass's default, ``--help``
    panel and, for a word with fixed values, :func:`choice`. The default stays None (unset), so
    the config file or the dataclass decides.
    """
    s = settings.spec(cls, name)
    decl, text = settings.declaration(cls, name), settings.help_text(cls, name)
    if s.choices_from is not None:
        return choice(s.choices_from, decl, help=text, rich_help_panel=s.panel, annotated=annotated)
    first: tuple[Any, ...] = () if annotated else (None,)
    return typer.Option(*first, decl, help=text, rich_help_panel=s.panel)


def settings_given(params: Mapping[str, object], cls: type) -> dict[str, Any]:
    """The settings of ``cls`` among a command's parameters (``ctx.params``), by field name.

    A command names each settings parameter as its field, so the options reach ``load_config``
    without a hand-built dict; unset ones are None.
    """
    import dataclasses

    return {f.name: params[f.name] for f in dataclasses.fields(cls) if f.name in params}
