"""Refusing files whose loading would run code nobody vouched for (the Trust model).

See docs/architecture.md ("Trust model"): a pickle loads only with ``--trust-code`` or when crmse
wrote the file in this workspace.
"""

from __future__ import annotations

from pathlib import Path

from crmse_cli.errors import CrmseError

TRUST_OPTION = "--trust-code"
"""The option by which the user says a file's pickled code may run (cli/common.py)."""


def refuse_untrusted(path: Path | str, what: str) -> CrmseError:
    """The one-line refusal of a file whose loading would run code that nobody vouched for.

    Args:
        path: the file.
        what: what it holds, e.g. "a 'mace' model stored as a pickle".
    """
    return CrmseError(
        f"{path} holds {what}: loading it runs code from the file, and crmse did not write it in "
        f"this workspace; pass {TRUST_OPTION} only if you trust where the file came from"
    )
