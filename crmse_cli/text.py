r"""User-controlled text (run, sweep and dataset names): what a name may hold and how it is shown.

A name is typed by one user and printed on many terminals (a shared PostgreSQL registry): an
ESC sequence in it would colour or move everyone's cursor, a newline would split a table row,
a right-to-left override would disguise it. So names with control characters are refused when
they are created (:func:`check_name`), and anything read back from a registry is printed through
:func:`visible`, which writes such characters as Python escapes (``\x1b``, ``\n``, ``\u202e``).
"""

from __future__ import annotations

import unicodedata

from crmse_cli.errors import CrmseError

_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
"""Unicode categories that are not shown as themselves: controls (C0, DEL, C1), format characters
(bidi overrides, zero-width joiners), surrogates, private use, unassigned, line and paragraph
separators."""


def is_control(char: str) -> bool:
    """Whether ``char`` is not printed as itself (see :data:`_CONTROL_CATEGORIES`)."""
    return unicodedata.category(char) in _CONTROL_CATEGORIES


def visible(text: str) -> str:
    r"""``text`` with every control character written as its Python escape (``\x1b``, ``\n``)."""
    if not any(is_control(c) for c in text):
        return text
    return "".join(c.encode("unicode_escape").decode("ascii") if is_control(c) else c for c in text)


def check_name(what: str, name: str) -> None:
    """Refuse a name (of a run, sweep or dataset) that holds control characters.

    Args:
        what: what is named, e.g. "run name", shown in the message.
        name: the name.

    Raises:
        CrmseError: one line, the name shown with its control characters escaped.
    """
    if any(is_control(c) for c in name):
        raise CrmseError(
            f"{what} '{visible(name)}' holds control characters (escape sequences, newlines, tabs "
            "or invisible formatting); use printable characters only"
        )
