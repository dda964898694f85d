"""Study tables: metrics of runs side by side, seed groups, stability tests per seed, stratified and pooled.

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
from crmse_cli.analysis.strata import cmh_test
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

    Per group, the mean ± half-range over its runs; the tests of every group against the first
    within seeds (:func:`stratified_rows`: the i-th run of each group is seed i); then the pooled
    replicas that stayed physical with Fisher's test.
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
    lines += stratified_rows(groups)  # the seeds' own tests, beside the pooled one below
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


def seed_tables(
    first: Sequence[Mapping[str, float]], other: Sequence[Mapping[str, float]]
) -> list[list[list[int]]] | None:
    """One 2x2 table per seed, [[left, stayed] of ``other``, [left, stayed] of ``first``].

    The i-th run of each group is seed i (list the seeds in the same order in every group).
    None when the groups differ in length or a run has no replicas.
    """
    if len(first) != len(other) or not first:
        return None
    tables = []
    for a, b in zip(first, other, strict=True):
        pa, pb = pool_stability([a]), pool_stability([b])
        if pa.n_replicas <= 0 or pb.n_replicas <= 0:
            return None
        tables.append([[pb.n_left, pb.n_stable], [pa.n_left, pa.n_stable]])
    return tables


def _odds(t: list[list[int]]) -> float:
    (a, b), (c, d) = t
    return a * d / (b * c) if b * c else (math.nan if a * d == 0 else math.inf)


def stratified_rows(groups: Mapping[str, Sequence[Mapping[str, float]]]) -> list[str]:
    """Rows of the per-seed tests of every group against the first.

    Per seed: the replicas that left, the odds ratio of leaving against the first group's same
    seed and Fisher's p. Over seeds: the Cochran-Mantel-Haenszel p with the Mantel-Haenszel odds
    ratio and the Breslow-Day (Tarone) heterogeneity p (:mod:`crmse_cli.analysis.strata`).
    Empty unless every group has the first group's number of runs (>= 2), each with replicas.
    """
    runs = list(groups.values())
    tables = [seed_tables(runs[0], r) for r in runs[1:]]
    if len(runs) < 2 or len(runs[0]) < 2 or any(t is None for t in tables):
        return []
    seeds = [", ".join(f"{int(r['n_left'])}/{int(r['n_replicas'])}" for r in runs[0])]
    strata = [""]
    for t in tables:
        assert t is not None
        seeds.append(", ".join(_seed_cell(x) for x in t))
        strata.append(_cmh_cell(t))
    return [
        "| left per seed (odds ratio and Fisher p vs the first group's same seed) | "
        + " | ".join(seeds)
        + " |",
        "| stratified by seed: CMH p (Mantel-Haenszel OR; Breslow-Day-Tarone p) | "
        + " | ".join(strata)
        + " |",
    ]


def _seed_cell(t: list[list[int]]) -> str:
    (left, stayed), first = t
    p = fisher_left(_pooled(first), _pooled(t[0]))
    return f"{left}/{left + stayed} (OR {fmt(_odds(t))}, p = {p:.2g})"


def _cmh_cell(t: list[list[list[int]]]) -> str:
    try:
        r = cmh_test(t)
    except CrmseError:  # nobody left, or everybody, in every seed: no test
        return "-"
    het = f"{r.heterogeneity_pvalue:.2g}" if math.isfinite(r.heterogeneity_pvalue) else "-"
    return f"p = {r.pvalue:.2g} (OR {fmt(r.odds_ratio)}; heterogeneity p = {het})"


def _pooled(row: list[int]) -> PooledStability:
    return PooledStability(row[0] + row[1], row[0])
