"""The force budget of `crmse regularize --force-budget`: its settings and the selection rule.

A run with a budget keeps candidate checkpoints along the way (the parent itself is candidate 0)
and scores each on the labelled validation frames and on a short stability screen (R replicas of
BAOAB at the sampling temperature, the same seed for every candidate, so the screens are
paired). The rule returns the most stable candidate whose validation force MAE is at most
``budget`` (relative) above the parent's; ties go to the lower force MAE, then the earlier
update; when no candidate after the parent is within budget the parent is returned, flagged.

Torch-free: the CLI's help and ``crmse show`` read this module. The screen and the registry
side live in :mod:`crmse_cli.stages.regularize_budget`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crmse_cli.errors import CrmseError
from crmse_cli.settings import setting
from crmse_cli.train.lambda_schedule import under_budget
from crmse_cli.validate import COUNT_RANGE, TEMPERATURE_RANGE, check_config

# Metric rows of a budget run (one per candidate at step = its update; the choice without step).
VAL_FORCE_MAE = "budget_val_force_mae"  # kcal/mol/A, validation force MAE of the candidate
VAL_FORCE_RMSE = "budget_val_force_rmse"  # kcal/mol/A
VAL_ENERGY_MAE = "budget_val_energy_mae"  # kcal/mol
LEFT = "budget_left"  # 1, screen replicas that left the physical basin
REPLICAS = "budget_replicas"  # 1, screen replicas
REL_FORCE = "budget_rel_force"  # 1, force MAE / the parent's - 1
CHOICE_UPDATE = "budget_choice_update"  # 1, update of the chosen candidate (0: the parent)
CHOICE_LEFT = "budget_choice_left"  # 1
CHOICE_REL_FORCE = "budget_choice_rel_force"  # 1
N_WITHIN = "budget_within"  # 1, candidates within the budget (the parent included)
N_CANDIDATES = "budget_candidates"  # 1
PARENT_FALLBACK = "budget_parent_fallback"  # 1 when no candidate after the parent was within budget

PANEL = "Force budget"
"""The ``--help`` panel that lists the budget's options."""


@dataclass(frozen=True)
class BudgetConfig:
    """Settings of the force budget (units in the names).

    Attributes:
        force_budget: the largest accepted relative increase of the validation force MAE over the
            parent's (0.10: 10%); None: no budget, no candidates (the run's last weights are final).
        budget_every: keep and score a candidate every this many updates (and at the end).
        screen_replicas: R, replicas of each candidate's stability screen.
        screen_steps: S, BAOAB steps of the screen (0.5 fs each: 2000 = 1 ps).
        screen_temperature_K: temperature of the screen; None: the run's ``temperature_K``.
    """

    force_budget: float | None = setting(
        None,
        range="(0, 10]",
        panel=PANEL,
        unset="unset: no candidates",
        help="Keep candidate checkpoints along the run, score each on the validation frames and a "
        "short stability screen, and return the most stable one whose validation force MAE is at most "
        "this much (relative, 0.10 = 10%) above the parent's.",
    )
    budget_every: int = setting(25, range=COUNT_RANGE, panel=PANEL, help="Updates between candidates.")
    screen_replicas: int = setting(
        32, range="[1, 1e6]", panel=PANEL, help="Replicas of each candidate's screen."
    )
    screen_steps: int = setting(
        2000, range=COUNT_RANGE, panel=PANEL, help="BAOAB steps of the screen (0.5 fs each)."
    )
    screen_temperature_K: float | None = setting(
        None, range=TEMPERATURE_RANGE, panel=PANEL, help="Temperature of the screen.", unset="--temperature-K"
    )

    def __post_init__(self) -> None:
        check_config(self)  # types and ranges declared on the fields: crmse_cli/validate.py

    @property
    def on(self) -> bool:
        """Whether the run keeps and scores candidates."""
        return self.force_budget is not None


@dataclass(frozen=True)
class Candidate:
    """One scored candidate: its update (0 = the parent), validation errors and screen result.

    Attributes:
        update: parameter updates behind the candidate (0: the parent).
        val_force_mae: validation force MAE, kcal/mol/Å.
        left: screen replicas that left the physical basin.
        replicas: screen replicas.
        val_force_rmse: validation force RMSE, kcal/mol/Å.
        val_energy_mae: validation energy MAE, kcal/mol.
    """

    update: int
    val_force_mae: float
    left: int
    replicas: int
    val_force_rmse: float = math.nan
    val_energy_mae: float = math.nan


@dataclass(frozen=True)
class BudgetChoice:
    """What the rule chose and on what evidence.

    Attributes:
        chosen: the candidate returned.
        rel_force: its validation force MAE relative to the parent's, minus 1.
        n_within: candidates within the budget, the parent included.
        n_candidates: candidates scored, the parent included.
        parent_fallback: True when no candidate after the parent was within the budget.
    """

    chosen: Candidate
    rel_force: float
    n_within: int
    n_candidates: int
    parent_fallback: bool


def relative_force(candidate: Candidate, parent: Candidate) -> float:
    """Validation force MAE of ``candidate`` over the parent's, minus 1 (NaN if undefined)."""
    if not (parent.val_force_mae > 0 and math.isfinite(parent.val_force_mae)):
        return math.nan
    return candidate.val_force_mae / parent.val_force_mae - 1.0


def choose(candidates: Sequence[Candidate], budget: float) -> BudgetChoice:
    """The most stable candidate within ``budget``; the parent (update 0) when none after it is.

    Within budget: force MAE <= (1 + ``budget``) x the parent's (a non-finite MAE never is; the
    test of :func:`crmse_cli.train.lambda_schedule.under_budget`, lambda's controller). Among
    those, fewest replicas left; ties: lower force MAE, then the earlier update.

    Raises:
        CrmseError: no parent (update 0) among ``candidates``, or a non-positive budget.
    """
    if not budget > 0:
        raise CrmseError(f"the force budget must be > 0, got {budget}")
    parents = [c for c in candidates if c.update == 0]
    if not parents:
        raise CrmseError("the force budget needs the parent (candidate of update 0) to compare with")
    parent = parents[0]
    rel = {c.update: relative_force(c, parent) for c in candidates}
    within = [
        c
        for c in candidates
        if math.isfinite(rel[c.update]) and under_budget(c.val_force_mae, parent.val_force_mae, budget)
    ]
    if parent not in within:  # the parent is its own reference: rel 0 unless its MAE is undefined
        within.append(parent)
    best = min(within, key=lambda c: (c.left, _finite_or_inf(c.val_force_mae), c.update))
    return BudgetChoice(
        chosen=best,
        rel_force=rel[best.update] if best is not parent else 0.0,
        n_within=len(within),
        n_candidates=len(candidates),
        parent_fallback=all(c.update == 0 for c in within),
    )


def _finite_or_inf(x: float) -> float:
    return x if math.isfinite(x) else math.inf


def candidate_rows(c: Candidate, parent_mae: float) -> list[dict[str, Any]]:
    """The metric rows of one scored candidate (step = its update)."""
    rel = c.val_force_mae / parent_mae - 1.0 if parent_mae > 0 else math.nan
    values = {
        VAL_FORCE_MAE: (c.val_force_mae, "kcal/mol/A"),
        VAL_FORCE_RMSE: (c.val_force_rmse, "kcal/mol/A"),
        VAL_ENERGY_MAE: (c.val_energy_mae, "kcal/mol"),
        LEFT: (float(c.left), "1"),
        REPLICAS: (float(c.replicas), "1"),
        REL_FORCE: (rel, "1"),
    }
    return [
        {"name": k, "value": float(v), "unit": u, "step": c.update, "split": "val"}
        for k, (v, u) in values.items()
        if math.isfinite(float(v))
    ]


def choice_rows(choice: BudgetChoice) -> list[dict[str, Any]]:
    """The final metric rows of the choice."""
    c = choice.chosen
    values = {
        CHOICE_UPDATE: float(c.update),
        CHOICE_LEFT: float(c.left),
        CHOICE_REL_FORCE: choice.rel_force,
        N_WITHIN: float(choice.n_within),
        N_CANDIDATES: float(choice.n_candidates),
        PARENT_FALLBACK: float(choice.parent_fallback),
    }
    return [{"name": k, "value": v, "unit": "1"} for k, v in values.items() if math.isfinite(v)]


def candidates_from_rows(rows: Mapping[str, Sequence[tuple[int, float]]]) -> list[Candidate]:
    """Scored candidates back from their metric rows: metric name -> [(step, value), ...].

    A candidate is complete when both its force MAE and its screen count were logged.
    """
    mae = dict(rows.get(VAL_FORCE_MAE, []))
    left = dict(rows.get(LEFT, []))
    reps = dict(rows.get(REPLICAS, []))
    rmse = dict(rows.get(VAL_FORCE_RMSE, []))
    e_mae = dict(rows.get(VAL_ENERGY_MAE, []))
    return [
        Candidate(
            update=int(u),
            val_force_mae=float(mae[u]),
            left=int(left[u]),
            replicas=int(reps.get(u, 0)),
            val_force_rmse=float(rmse.get(u, math.nan)),
            val_energy_mae=float(e_mae.get(u, math.nan)),
        )
        for u in sorted(set(mae) & set(left))
    ]


def budget_summary(config: Mapping[str, Any], finals: Mapping[str, float]) -> str | None:
    """One line for ``crmse show``: the budget, the choice, its screen and force change (None: no budget)."""
    budget = (config.get("budget") or {}).get("force_budget")
    if budget is None:
        return None
    if CHOICE_UPDATE not in finals:
        return f"{budget:g} (relative force MAE): no choice yet (the run has not finished)"
    update = int(finals[CHOICE_UPDATE])
    replicas = int((config.get("budget") or {}).get("screen_replicas", 0))
    left = int(finals.get(CHOICE_LEFT, math.nan))
    rel = finals.get(CHOICE_REL_FORCE, math.nan)
    within, total = int(finals.get(N_WITHIN, 0)), int(finals.get(N_CANDIDATES, 0))
    what = "the parent (update 0)" if update == 0 else f"update {update}"
    line = (
        f"{budget:g}: chose {what}, {left}/{replicas} left in the screen, validation force MAE "
        f"{100 * rel:+.1f}% vs the parent; {within} of {total} candidates within budget"
    )
    if finals.get(PARENT_FALLBACK, 0.0) >= 0.5:
        line += " (no candidate after the parent was: the parent is returned)"
    return line
