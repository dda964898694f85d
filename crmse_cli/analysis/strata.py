"""Stratified tests of 2x2 tables: Cochran-Mantel-Haenszel and Breslow-Day (Tarone).

The study tables compare the replicas that left the physical basin in two settings, one 2x2
table per seed (stratum):

    [[a_k, b_k],      a: left in setting A,  b: stayed in A
     [c_k, d_k]]      c: left in setting B,  d: stayed in B

Seeds are the unit of evidence (issue 29): pooling the replicas of three parents into one
Fisher test describes those parents, not the method. The Cochran-Mantel-Haenszel test asks
whether the odds of leaving differ between A and B within seeds, with the Mantel-Haenszel
common odds ratio; Breslow-Day with Tarone's correction asks whether that odds ratio differs
between seeds (heterogeneity). Formulas: Agresti, Categorical Data Analysis (3rd ed.), 6.4.2
and 6.4.5; Tarone, Biometrika 72 (1985) 91. The continuity correction is R's
``mantelhaen.test``'s (``min(0.5, |sum a - sum E a|)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

from crmse_cli.errors import CrmseError

Table = Sequence[Sequence[float]]
"""A 2x2 table [[a, b], [c, d]] of counts."""
Tables = Sequence[Table] | np.ndarray
"""One 2x2 table per stratum: a list of tables or a (K, 2, 2) array."""


@dataclass(frozen=True)
class StratifiedTest:
    """Result of :func:`cmh_test`.

    Attributes:
        statistic: the CMH chi-square (1 degree of freedom, continuity-corrected).
        pvalue: its two-sided p value.
        odds_ratio: the Mantel-Haenszel common odds ratio (a d / b c pooled within strata).
        heterogeneity_statistic: Breslow-Day statistic with Tarone's correction (K - 1 df).
        heterogeneity_pvalue: its p value (NaN when undefined: one informative stratum, or a
            common odds ratio of 0 or infinity).
        n_strata: strata used (those with at least two observations).
    """

    statistic: float
    pvalue: float
    odds_ratio: float
    heterogeneity_statistic: float
    heterogeneity_pvalue: float
    n_strata: int


def _tables(tables: Tables) -> np.ndarray:
    arr = np.asarray(tables, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (2, 2) or arr.shape[0] == 0:
        raise CrmseError(f"a stratified test needs 2x2 tables, one per stratum; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise CrmseError("a stratified test needs non-negative counts")
    kept: np.ndarray = arr[arr.sum(axis=(1, 2)) > 1]
    return kept  # a stratum of 0 or 1 observation carries no information


def cmh_test(tables: Tables) -> StratifiedTest:
    """Cochran-Mantel-Haenszel test of 2x2 tables (one per stratum), with Breslow-Day-Tarone.

    Raises:
        CrmseError: not a list of 2x2 tables of non-negative counts, or no stratum with two
            observations and both margins filled.
    """
    t = _tables(tables)
    a, b, c, d = t[:, 0, 0], t[:, 0, 1], t[:, 1, 0], t[:, 1, 1]
    n = a + b + c + d
    expected = (a + b) * (a + c) / n
    variance = (a + b) * (c + d) * (a + c) * (b + d) / (n * n * (n - 1))
    if len(t) == 0 or variance.sum() <= 0:
        raise CrmseError("the stratified test is undefined: no stratum has both outcomes and both groups")
    delta = float(a.sum() - expected.sum())
    yates = min(0.5, abs(delta))
    statistic = (abs(delta) - yates) ** 2 / float(variance.sum())
    num, den = float((a * d / n).sum()), float((b * c / n).sum())
    odds = num / den if den > 0 else math.inf
    het, het_p = breslow_day(t, odds)
    return StratifiedTest(
        statistic=statistic,
        pvalue=float(chi2.sf(statistic, 1)),
        odds_ratio=odds,
        heterogeneity_statistic=het,
        heterogeneity_pvalue=het_p,
        n_strata=len(t),
    )


def breslow_day(tables: Tables, odds_ratio: float) -> tuple[float, float]:
    """Breslow-Day statistic with Tarone's correction and its p value (K - 1 df) at ``odds_ratio``.

    For each stratum, the expected ``a`` under the common odds ratio is the root of
    ``A (d - a_margin + A) = OR (row1 - A)(col1 - A)`` that keeps every cell non-negative.
    Returns (NaN, NaN) when undefined (fewer than two strata; OR of 0 or infinity).
    """
    t = _tables(tables)
    if len(t) < 2 or not (0 < odds_ratio < math.inf):
        return math.nan, math.nan
    a = t[:, 0, 0]
    row1, col1 = t[:, 0].sum(axis=1), t[:, :, 0].sum(axis=1)
    n = t.sum(axis=(1, 2))
    fitted = np.array([_fitted_a(r, c, m, odds_ratio) for r, c, m in zip(row1, col1, n, strict=True)])
    cells = np.stack([fitted, row1 - fitted, col1 - fitted, n - row1 - col1 + fitted])
    with np.errstate(divide="ignore"):
        var = 1.0 / (1.0 / cells).sum(axis=0)
    keep = np.isfinite(var) & (var > 0)
    if keep.sum() < 2:
        return math.nan, math.nan
    diff, var = (a - fitted)[keep], var[keep]
    statistic = float((diff**2 / var).sum() - diff.sum() ** 2 / var.sum())
    return statistic, float(chi2.sf(statistic, int(keep.sum()) - 1))


def _fitted_a(row1: float, col1: float, n: float, odds: float) -> float:
    """The ``a`` cell with margins (row1, col1, n) and odds ratio ``odds``."""
    lo, hi = max(0.0, row1 + col1 - n), min(row1, col1)
    if lo == hi:
        return lo
    # (OR - 1) A^2 - [OR (row1 + col1) + n - row1 - col1] A + OR row1 col1 = 0
    qa = odds - 1.0
    qb = -(odds * (row1 + col1) + n - row1 - col1)
    qc = odds * row1 * col1
    if abs(qa) < 1e-12:
        return -qc / qb
    disc = math.sqrt(max(qb * qb - 4 * qa * qc, 0.0))
    for root in ((-qb - disc) / (2 * qa), (-qb + disc) / (2 * qa)):
        if lo - 1e-9 <= root <= hi + 1e-9:
            return root
    raise CrmseError("Breslow-Day: no admissible fitted count (report this with the tables)")
