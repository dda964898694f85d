"""`crmse regularize --force-budget`: the selection rule, the candidates a run keeps, the choice it records."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from synthetic import cli_main, make_workspace, one_line_error, regularize_cut_at, tiny_pretrain

from crmse_cli.errors import CrmseError
from crmse_cli.train import budget as rule
from crmse_cli.train.budget import BudgetConfig, Candidate, choose


def _c(update: int, mae: float, left: int) -> Candidate:
    return Candidate(update=update, val_force_mae=mae, left=left, replicas=32)


# -- the rule -----------------------------------------------------------------------------------
def test_rule_picks_the_most_stable_candidate_within_budget() -> None:
    cands = [_c(0, 1.00, 20), _c(25, 1.05, 9), _c(50, 1.09, 4), _c(75, 1.25, 0), _c(100, 1.10, 2)]
    choice = choose(cands, 0.10)
    # 75 is the most stable but 25% worse; 100 sits exactly on the budget line (<= counts).
    assert choice.chosen.update == 100
    assert choice.rel_force == pytest.approx(0.10)
    assert choice.n_within == 4 and choice.n_candidates == 5 and not choice.parent_fallback
    assert choose(cands, 0.05).chosen.update == 25  # a tighter budget: only 25 (and the parent)
    assert choose(cands, 0.3).chosen.update == 75


def test_rule_returns_the_parent_when_nothing_after_it_is_within_budget() -> None:
    cands = [_c(0, 2.0, 12), _c(25, 2.5, 1), _c(50, 3.0, 0), _c(75, math.nan, 0)]
    choice = choose(cands, 0.10)
    assert choice.chosen.update == 0 and choice.parent_fallback
    assert choice.rel_force == 0.0 and choice.n_within == 1


def test_rule_breaks_ties_by_force_error_then_by_update() -> None:
    cands = [_c(0, 1.0, 5), _c(25, 1.04, 3), _c(50, 1.02, 3), _c(75, 1.02, 3)]
    assert choose(cands, 0.1).chosen.update == 50  # 25, 50, 75 tie on left; 50, 75 on MAE
    # The parent wins a tie on replicas left when its force error is the lowest.
    assert choose([_c(0, 1.0, 3), _c(25, 1.01, 3)], 0.1).chosen.update == 0
    assert not choose([_c(0, 1.0, 3), _c(25, 0.99, 3)], 0.1).parent_fallback


def test_rule_needs_the_parent_and_a_positive_budget() -> None:
    with pytest.raises(CrmseError, match="parent"):
        choose([_c(25, 1.0, 0)], 0.1)
    with pytest.raises(CrmseError, match="budget"):
        choose([_c(0, 1.0, 0)], 0.0)


def test_candidates_come_back_from_their_metric_rows() -> None:
    cands = [_c(0, 1.0, 5), _c(25, 1.1, 2)]
    rows: dict[str, list[tuple[int, float]]] = {}
    for c in cands:
        for r in rule.candidate_rows(c, 1.0):
            rows.setdefault(r["name"], []).append((r["step"], r["value"]))
    back = rule.candidates_from_rows(rows)
    assert [(c.update, c.val_force_mae, c.left, c.replicas) for c in back] == [
        (0, 1.0, 5, 32),
        (25, 1.1, 2, 32),
    ]
    assert dict(rows[rule.REL_FORCE])[25] == pytest.approx(0.1)


def test_budget_settings_are_validated() -> None:
    assert not BudgetConfig().on and BudgetConfig(force_budget=0.1).on
    for bad in (0.0, -0.1, 10.5, math.nan):
        with pytest.raises(CrmseError, match="force_budget"):
            BudgetConfig(force_budget=bad)
    with pytest.raises(CrmseError, match="screen_replicas"):
        BudgetConfig(force_budget=0.1, screen_replicas=0)
