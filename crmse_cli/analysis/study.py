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

from crmse_cli.errors import CrmseError

ROWS: tuple[tuple[str, str], ...] = (
    ("test_energy_mae", "test energy MAE (kcal/mol)"),
    ("test_force_mae", "test force MAE (kcal/mol/Å)"),
    ("energy_ks", "energy KS vs reference"),
    ("hr_mae", "h(r) MAE"),
    ("dihedral_profile_error.hydroxyl", "hydroxyl profile error (kcal/mol)"),
    ("dihedral_profile_error.methyl", "methyl profile error (kcal/mol)"),
    ("stable_fraction", "replicas that stayed physical"),
    ("n_left_collapse", "replicas that collapsed (pair test)"),
    ("n_left_bond", "replicas that broke a bond"),
    ("median_leave_time_ps", "median leave time of those that left (ps)"),
    ("share_outside_support", "share of frames outside the reference support"),
    ("min_pair_distance_sample", "closest pair seen (Å)"),
    ("energy_mean_sample_minus_ref", "mean energy, samples - reference (kcal/mol)"),
    ("energy_std_sample", "energy spread of samples (kcal/mol)"),
    ("energy_std_ref", "energy spread of reference (kcal/mol)"),
    ("config_temperature_sample_K", "T_conf of samples (K)"),
    ("config_temperature_ref_K", "T_conf of reference, its forces, this model's Laplacian (K)"),
    ("virial_temperature_sample_K", "T_virial of samples, model forces (K)"),
    ("virial_temperature_ref_K", "T_virial of reference, its forces (K)"),
    ("sampling_temperature_K", "sampling temperature (K)"),
)
"""(metric name, row title) of the study tables, in display order."""


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
    for key, title in ROWS:
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
    for key, title in ROWS:
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
