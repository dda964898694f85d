"""Stratified tests of the study tables: Cochran-Mantel-Haenszel, Breslow-Day-Tarone, per-seed rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import chi2, fisher_exact

from crmse_cli.analysis.strata import breslow_day, cmh_test
from crmse_cli.analysis.study import groups_table
from crmse_cli.errors import CrmseError

# R's documented example of mantelhaen.test (Cochran's penicillin/rabbits data, 5 strata, rows
# "delay none" / "delay 1.5 h", columns cured / died): R prints "Mantel-Haenszel X-squared =
# 3.9286, df = 1, p-value = 0.04747".
RABBITS = [
    [[0, 6], [0, 5]],
    [[3, 3], [0, 6]],
    [[6, 0], [2, 4]],
    [[5, 1], [6, 0]],
    [[2, 0], [5, 0]],
]


def _cmh_by_hand(tables: list) -> tuple[float, float]:
    """The textbook formulas, stratum by stratum (Agresti 6.4.2), with R's continuity correction."""
    dev = var = num = den = 0.0
    for (a, b), (c, d) in tables:
        n = a + b + c + d
        dev += a - (a + b) * (a + c) / n
        var += (a + b) * (c + d) * (a + c) * (b + d) / (n * n * (n - 1))
        num += a * d / n
        den += b * c / n
    stat = (abs(dev) - min(0.5, abs(dev))) ** 2 / var
    return stat, num / den


def test_cmh_reproduces_the_documented_example() -> None:
    r = cmh_test(RABBITS)
    stat, odds = _cmh_by_hand(RABBITS)
    assert r.statistic == pytest.approx(stat, rel=1e-12)
    assert r.statistic == pytest.approx(3.9286, abs=5e-5)  # R's printed value
    assert r.pvalue == pytest.approx(0.04747, abs=5e-6)
    assert r.pvalue == pytest.approx(chi2.sf(stat, 1), rel=1e-12)
    assert r.odds_ratio == pytest.approx(odds) == 7.0  # (1.5 + 2) / 0.5


def _fitted(row1: float, col1: float, n: float, odds: float) -> float:
    """The a cell with these margins and odds ratio, by root finding (independent of the module)."""
    lo, hi = max(0.0, row1 + col1 - n), min(row1, col1)
    f = lambda x: x * (n - row1 - col1 + x) - odds * (row1 - x) * (col1 - x)  # noqa: E731
    return brentq(f, lo, hi)


def test_breslow_day_tarone_against_an_independent_computation() -> None:
    # Replicas that left / stayed per seed: a setting against its control (made-up counts).
    tables = [[[11, 53], [17, 47]], [[8, 56], [39, 25]], [[13, 51], [51, 13]]]
    odds = cmh_test(tables).odds_ratio
    diffs, variances = [], []
    for (a, b), (c, d) in tables:
        fa = _fitted(a + b, a + c, a + b + c + d, odds)
        cells = [fa, a + b - fa, a + c - fa, d - a + fa]
        diffs.append(a - fa)
        variances.append(1.0 / sum(1.0 / x for x in cells))
    dv, vv = np.array(diffs), np.array(variances)
    expected = float((dv**2 / vv).sum() - dv.sum() ** 2 / vv.sum())  # Tarone (1985)
    stat, p = breslow_day(tables, odds)
    assert stat == pytest.approx(expected, rel=1e-9)
    assert p == pytest.approx(chi2.sf(expected, 2), rel=1e-9)
    # statsmodels 0.15 StratifiedTable(...).test_equal_odds(adjust=True) gives 14.8768, p 5.88e-4.
    assert stat == pytest.approx(14.8768, abs=1e-4) and p == pytest.approx(5.882e-4, rel=1e-3)


def test_homogeneous_strata_show_no_heterogeneity_and_a_common_odds_ratio() -> None:
    same = [[[10, 54], [30, 34]]] * 3
    r = cmh_test(same)
    assert r.odds_ratio == pytest.approx(10 * 34 / (54 * 30))
    assert r.heterogeneity_statistic == pytest.approx(0.0, abs=1e-9)
    assert r.heterogeneity_pvalue == pytest.approx(1.0)
    assert r.pvalue < 1e-4
    assert math.isnan(cmh_test([[[10, 54], [30, 34]]]).heterogeneity_pvalue)  # one stratum


def test_cmh_refuses_what_it_cannot_test() -> None:
    with pytest.raises(CrmseError, match="2x2"):
        cmh_test([[1, 2, 3]])
    with pytest.raises(CrmseError, match="non-negative"):
        cmh_test([[[1, -2], [3, 4]]])
    with pytest.raises(CrmseError, match="undefined"):
        cmh_test([[[0, 64], [0, 64]], [[0, 64], [0, 64]]])  # nobody left anywhere


def test_the_study_table_shows_per_seed_and_stratified_tests() -> None:
    control = [{"n_replicas": 64, "n_left": k} for k in (17, 39, 51)]
    crmse = [{"n_replicas": 64, "n_left": k} for k in (11, 8, 13)]
    lines = groups_table({"control": control, "crmse": crmse})
    per_seed = next(x for x in lines if x.startswith("| left per seed"))
    stratified = next(x for x in lines if x.startswith("| stratified by seed"))
    p0 = fisher_exact([[11, 53], [17, 47]]).pvalue
    assert f"11/64 (OR 0.574, p = {p0:.2g})" in per_seed and "17/64, 39/64, 51/64" in per_seed
    r = cmh_test([[[11, 53], [17, 47]], [[8, 56], [39, 25]], [[13, 51], [51, 13]]])
    assert f"p = {r.pvalue:.2g}" in stratified and f"{r.heterogeneity_pvalue:.2g}" in stratified
    assert r.odds_ratio < 1 and r.heterogeneity_pvalue < 0.01
    # Groups of different lengths, or one seed only: no per-seed rows.
    assert not [x for x in groups_table({"a": control, "b": crmse[:2]}) if "per seed" in x]
    assert not [x for x in groups_table({"a": control[:1], "b": crmse[:1]}) if "per seed" in x]
