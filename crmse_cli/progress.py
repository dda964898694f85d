"""Rich progress bars for long work, written to stderr so ``--json`` output stays clean.

Library code that runs long takes an optional callback; stages build the bar here. Bars turn
themselves off when stderr is not a terminal (CI logs) or ``CRMSE_NO_PROGRESS`` is set.
"""

from __future__ import annotations

import os

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_console = Console(stderr=True)


def make_progress(*, disable: bool = False) -> Progress:
    """A progress bar on stderr, hidden by ``disable`` (ranks other than 0) or ``CRMSE_NO_PROGRESS``.

    Columns: a description, a bar, n/total, elapsed and remaining time, and a free-text ``info``
    field (live losses, temperatures, resets).
    """
    disable = disable or bool(os.environ.get("CRMSE_NO_PROGRESS"))
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=_console,
        disable=disable,
        transient=False,
    )
