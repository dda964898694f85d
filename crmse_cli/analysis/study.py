"""Study tables: metrics of several runs side by side, seed groups, pooled stability with Fisher's test.

The registry-free part of the tables of ``docs/results.md`` (``benchmarks/study_table.py`` reads
the registry and calls these). A run is a dict ``metric name -> value`` (final metrics of an
evaluate run); a group is a list of runs (seeds of one setting).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from scipy.stats import fisher_exact

from crmse_cli import names
from crmse_cli.errors import CrmseError

ROWS: tuple[str, ...] = (
    *names.CORE_METRICS,
    names.dihedral_profile_error("hydroxyl"),
    names.dihedral_profile_error("methyl"),
    names.STABLE_FRACTION,
    "n_left_collapse",
    "n_left_bond",
    names.MEDIAN_LEAVE_TIME_PS,
    names.SHARE_OUTSIDE_SUPPORT,
    "min_pair_distance_sample",
    "energy_mean_sample_minus_ref",
    "energy_std_sample",
    "energy_std_ref",
    names.CONFIG_TEMPERATURE_SAMPLE_K,
    names.CONFIG_TEMPERATURE_REF_K,
    "virial_temperature_sample_K",
    "virial_temperature_ref_K",
    "sampling_temperature_K",
)
"""Metrics of the study tables, in display order (titles: :func:`crmse_cli.names.metric_title`)."""


@dataclass(frozen=True)
class PooledStability:
    """Replicas pooled over the runs (seeds) of a group: ``n_replicas``, ``n_left``."""

    n_replicas: int
    n_left: int

    @property
    def n_stable(self) -> int:
        """Replicas that never left the physical basin."""
        return self.n_replicas - self.n_left


def pool_stability(runs: Iterable[Mapping[str, float]]) -> PooledStability:
    """Sum ``n_replicas`` and ``n_left`` (sample-run metrics) over runs."""
    n = left = 0
    for run in runs:
        n += int(run.get("n_replicas", 0))
        left += int(run.get("n_left", 0))
    return PooledStability(n, left)


def fisher_left(a: PooledStability, b: PooledStability) -> float:
    """Two-sided Fisher exact p-value of "left the basin" counts of two pooled groups.

    Raises:
        CrmseError: a group without replicas.
    """
    if a.n_replicas <= 0 or b.n_replicas <= 0:
        raise CrmseError("Fisher's test needs replicas in both groups; sample the runs first")
    table = [[a.n_stable, a.n_left], [b.n_stable, b.n_left]]
    return float(fisher_exact(table, alternative="two-sided").pvalue)


def fmt(v: float) -> str:
    """A table cell: integers and values >= 100 without decimals, else 3 significant digits."""
    if v != v:
        return "-"
    return f"{v:.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:.3g}"


def runs_table(columns: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Markdown lines: one column per run (label -> metrics), one row per :data:`ROWS` entry."""
    lines = ["| metric | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for key in ROWS:
        title = names.metric_title(key)
        lines.append(f"| {title} | " + " | ".join(fmt(c.get(key, math.nan)) for c in columns.values()) + " |")
    return lines


def groups_table(groups: Mapping[str, Sequence[Mapping[str, float]]]) -> list[str]:
    """Markdown lines of a study table.

    Per group, the mean ± half-range over its runs, then the pooled replicas that stayed
    physical with Fisher's test of every group against the first.
    """
    lines = [
        "| metric | " + " | ".join(f"{k} (n={len(v)})" for k, v in groups.items()) + " |",
        "|---|" + "---|" * len(groups),
    ]
    for key in ROWS:
        title = names.metric_title(key)
        cells = []
        for runs in groups.values():
            xs = [r[key] for r in runs if key in r]
            if not xs:
                cells.append("-")
                continue
            mean, half = sum(xs) / len(xs), (max(xs) - min(xs)) / 2
            cells.append(f"{fmt(mean)} ± {fmt(half)}" if len(xs) > 1 else fmt(mean))
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    pooled = {label: pool_stability(runs) for label, runs in groups.items()}
    if all(p.n_replicas > 0 for p in pooled.values()):
        first = next(iter(pooled.values()))
        cells = []
        for i, p in enumerate(pooled.values()):
            cell = f"{p.n_stable}/{p.n_replicas}"
            if i:
                cell += f" (Fisher p = {fisher_left(first, p):.2g})"
            cells.append(cell)
        lines.append("| stable replicas, pooled over seeds | " + " | ".join(cells) + " |")
    return lines
