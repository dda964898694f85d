"""Tables of metrics by run that stay readable at 80 columns.

A number is never cut or folded (its column is at least as wide as its widest value); run names
lose the prefix they share (``repro-ethanol-xtb-quick-mse`` and ``...-crmse`` head their columns
as ``mse`` and ``crmse``, the prefix goes to the title), and what still does not fit wraps.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from rich.table import Table

from crmse_cli.cli.common import fmt_value, shown

_SEPARATOR = re.compile(r"[-_.: ]")
MIN_PREFIX = 6
"""A shared prefix shorter than this stays in the names (nothing much to gain)."""
_NAME_MIN = 8
"""Characters of a name kept on one line before it wraps (when deciding how many runs fit)."""


def wrapping_table(*headers: str, title: str, numbers: Iterable[str] = ()) -> Table:
    """A table whose text columns wrap and whose ``numbers`` columns never do.

    A long path or name is folded over lines, never cut with "…"; a number stays whole.
    """
    whole = set(numbers)
    table = Table(title=title, title_justify="left")
    for header in headers:
        table.add_column(
            header, overflow="fold", no_wrap=header in whole, justify="right" if header in whole else "left"
        )
    return table


def short_labels(labels: Sequence[str]) -> tuple[str, list[str]]:
    """The prefix that all ``labels`` share (cut after a separator) and each label without it.

    Returns ``("", labels)`` when fewer than two labels, a prefix shorter than
    :data:`MIN_PREFIX`, or when a label would be left empty or the same as another.
    """
    if len(labels) < 2:
        return "", list(labels)
    common = labels[0]
    for label in labels[1:]:
        while not label.startswith(common):
            common = common[:-1]
    cut = max((m.end() for m in _SEPARATOR.finditer(common)), default=0)
    rest = [label[cut:] for label in labels]
    if cut < MIN_PREFIX or not all(rest) or len(set(rest)) < len(rest):
        return "", list(labels)
    return labels[0][:cut], rest


def metrics_tables(
    title: str,
    metrics: Mapping[str, Mapping[str, tuple[float, str]]],
    keys: Iterable[str],
    *,
    width: int,
    key_title: Callable[[str], str] = str,
) -> list[Table]:
    """Tables of ``metrics`` (run label -> metric name -> (value, unit)), one row per key of ``keys``.

    One table when the runs fit in ``width`` columns; else the runs are split over several tables
    (each with the metric names), so no column is cut off the screen.

    Args:
        title: the tables' title; the run labels' shared prefix is added to it.
        metrics: the values by run label, in column order.
        keys: the metric names of the rows (a row with no value in any run is left out).
        width: the terminal's width in characters.
        key_title: the row heading of a metric name.
    """
    labels = list(metrics)
    prefix, heads = short_labels(labels)
    if prefix:
        title = f"{title} (runs {prefix}…)"
    rows = [
        (key_title(key), [fmt_value(metrics[lb][key][0]) if key in metrics[lb] else "n/a" for lb in labels])
        for key in keys
        if any(key in metrics[lb] for lb in labels)
    ]
    widest = [max((len(cells[i]) for _, cells in rows), default=1) for i in range(len(labels))]
    # A column takes its widest number, at least a few letters of its name, and 3 of borders.
    need = [max(w, min(len(h), _NAME_MIN)) + 3 for w, h in zip(widest, heads, strict=True)]
    room = width - min(max((len(k) for k, _ in rows), default=6), _NAME_MIN * 2) - 4
    groups: list[list[int]] = [[]]
    for i, n in enumerate(need):
        if groups[-1] and sum(need[j] for j in groups[-1]) + n > room:
            groups.append([])
        groups[-1].append(i)
    tables = []
    for part, group in enumerate(groups, 1):
        sub = title if len(groups) == 1 else f"{title} [{part}/{len(groups)}]"
        table = Table(title=shown(sub), title_justify="left")
        table.add_column("metric", overflow="fold")
        for i in group:
            table.add_column(shown(heads[i]), justify="right", overflow="fold", min_width=widest[i])
        for name, cells in rows:
            table.add_row(shown(name), *(cells[i] for i in group))
        tables.append(table)
    return tables
