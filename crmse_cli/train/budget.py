"""The force budget of `crmse regularize --force-budget`: its settings and the selection rule.

A run with a budget keeps candidate checkpoints along the way (the parent itself is candidate 0)
and scores each on the labelled validation frames and on a short stability screen (R replicas of
BAOAB at the sampling temperature, the same seed for every candidate, so the screens are
paired). The budget is relative to the validation force MAE of the MSE model the run descends
from (the nearest pretrain run up its ancestry: the parent itself for a CRMSE run, the CRMSE
run's parent for a polish of it).

Two picks:

- ``stable`` (default): the most stable candidate within the budget; ties go to the lower force
  MAE, then the earlier update; when no candidate after the parent is within budget the parent is
  returned, flagged.
- ``first``: the earliest candidate within the budget. For an MSE-only polish of a CRMSE model
  (``--lambda 0 --chain-source data``), where every update buys force accuracy back and gives
  stability back (issue 29, seed 0: 0, 2 and 6 of 64 replicas out after 0, 50 and 100 updates),
  the earliest one within budget is the most stable one, and no screen is needed
  (``--screen-steps 0``). When none is within budget the most accurate candidate is returned,
  flagged over budget.

Torch-free: the CLI's help and ``crmse show`` read this module. The screen and the registry
side live in :mod:`crmse_cli.stages.regularize_budget`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crmse_cli.errors import CrmseError
from crmse_cli.metric import Metric
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
OVER_BUDGET = "budget_over"  # 1 when pick "first" found no candidate within budget
REFERENCE_FORCE_MAE = "budget_reference_val_force_mae"  # kcal/mol/A, what the budget is relative to
PICKS = ("stable", "first")
FRAMES = ("val", "held")
N_FRAMES = "budget_frames_n"  # 1, labelled frames each candidate is scored on

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
        screen_steps: S, BAOAB steps of the screen (0.5 fs each: 2000 = 1 ps; 0: no screen).
        screen_temperature_K: temperature of the screen; None: the run's ``temperature_K``.
        budget_pick: "stable" (the most stable candidate within budget) or "first" (the earliest
            within budget: an MSE polish's most stable one).
        budget_frames: the frames each candidate is scored on: "val" (the pretrain run's validation
            frames) or "held" (every labelled frame of the split's training part that the run does
            not train on: the validation frames and the rest; 800 at 200 training frames of rMD17).
    """

    force_budget: float | None = setting(
        None,
        range="(0, 10]",
        panel=PANEL,
        unset="unset: no candidates",
        help="Keep candidate checkpoints along the run, score each on the validation frames and a "
        "short stability screen, and return the most stable one whose validation force MAE is at most "
        "this much (relative, 0.10 = 10%) above the MSE model's (the nearest pretrain run up its ancestry).",
    )
    budget_every: int = setting(25, range=COUNT_RANGE, panel=PANEL, help="Updates between candidates.")
    screen_replicas: int = setting(
        32, range="[1, 1e6]", panel=PANEL, help="Replicas of each candidate's screen."
    )
    screen_steps: int = setting(
        2000, range="[0, 1e12]", panel=PANEL, help="BAOAB steps of the screen (0.5 fs each; 0: no screen)."
    )
    screen_temperature_K: float | None = setting(
        None, range=TEMPERATURE_RANGE, panel=PANEL, help="Temperature of the screen.", unset="--temperature-K"
    )

    budget_pick: str = setting(
        "stable",
        choices=PICKS,
        panel=PANEL,
        help="stable: the most stable candidate within the budget; first: the earliest one (for an MSE "
        "polish of a CRMSE model: --lambda 0 --chain-source data --screen-steps 0). The budget is "
        "relative to the nearest pretrain run up the parent's ancestry.",
    )
    budget_frames: str = setting(
        "val",
        choices=FRAMES,
        panel=PANEL,
        help="The labelled frames each candidate is scored on: val (the pretrain run's validation "
        "frames) or held (every frame of the split's training part the run does not train on; a "
        "100-frame validation set reads a +10% budget to about +-2.5%, 800 frames to about +-1%).",
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
        over_budget: True when pick "first" found no candidate within the budget.
    """

    chosen: Candidate
    rel_force: float
    n_within: int
    n_candidates: int
    parent_fallback: bool
    over_budget: bool = False


def relative_force(candidate: Candidate, reference_mae: float) -> float:
    """Validation force MAE of ``candidate`` over ``reference_mae``, minus 1 (NaN if undefined)."""
    if not (reference_mae > 0 and math.isfinite(reference_mae)):
        return math.nan
    return candidate.val_force_mae / reference_mae - 1.0


def choose(
    candidates: Sequence[Candidate],
    budget: float,
    *,
    reference_mae: float | None = None,
    pick: str = "stable",
) -> BudgetChoice:
    """The candidate the budget picks (see the module's docstring for the two picks).

    Within budget: force MAE <= (1 + ``budget``) x ``reference_mae`` (default: the parent's, the
    candidate of update 0; a non-finite MAE never is; the test of
    :func:`crmse_cli.train.lambda_schedule.under_budget`, lambda's controller). With the default
    reference the parent is always within.

    Raises:
        CrmseError: no parent (update 0) among ``candidates``, a non-positive budget or an unknown pick.
    """
    if not budget > 0:
        raise CrmseError(f"the force budget must be > 0, got {budget}")
    if pick not in PICKS:
        raise CrmseError(f"budget pick must be one of {', '.join(PICKS)}, got {pick!r}")
    parents = [c for c in candidates if c.update == 0]
    if not parents:
        raise CrmseError("the force budget needs the parent (candidate of update 0) to compare with")
    parent = parents[0]
    ref = parent.val_force_mae if reference_mae is None else reference_mae
    rel = {c.update: relative_force(c, ref) for c in candidates}
    within = [
        c for c in candidates if math.isfinite(rel[c.update]) and under_budget(c.val_force_mae, ref, budget)
    ]
    if reference_mae is None and parent not in within:  # its own reference: rel 0 unless undefined
        within.append(parent)
        rel[parent.update] = 0.0
    over = not within
    if pick == "first":
        earlier = [c for c in within if c.update > 0 or reference_mae is not None]
        if earlier:
            best = min(earlier, key=lambda c: c.update)
        elif within:  # only the parent, its own reference
            best = parent
        else:
            best = min(candidates, key=lambda c: (_finite_or_inf(c.val_force_mae), c.update))
    elif within:
        best = min(within, key=lambda c: (c.left, _finite_or_inf(c.val_force_mae), c.update))
    else:  # an ancestor's reference that no candidate meets: the most accurate, flagged
        best = min(candidates, key=lambda c: (_finite_or_inf(c.val_force_mae), c.update))
    return BudgetChoice(
        chosen=best,
        rel_force=rel[best.update],
        n_within=len(within),
        n_candidates=len(candidates),
        parent_fallback=reference_mae is None and all(c.update == 0 for c in within),
        over_budget=over,
    )


def _finite_or_inf(x: float) -> float:
    return x if math.isfinite(x) else math.inf


def candidate_rows(c: Candidate, parent_mae: float) -> list[Metric]:
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
        Metric(name=k, value=float(v), unit=u, step=c.update, split="val")
        for k, (v, u) in values.items()
        if math.isfinite(float(v))
    ]


def choice_rows(choice: BudgetChoice) -> list[Metric]:
    """The final metric rows of the choice."""
    c = choice.chosen
    values = {
        CHOICE_UPDATE: float(c.update),
        CHOICE_LEFT: float(c.left),
        CHOICE_REL_FORCE: choice.rel_force,
        N_WITHIN: float(choice.n_within),
        N_CANDIDATES: float(choice.n_candidates),
        PARENT_FALLBACK: float(choice.parent_fallback),
        OVER_BUDGET: float(choice.over_budget),
    }
    return [Metric(name=k, value=v, unit="1") for k, v in values.items() if math.isfinite(v)]


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


def configured_budget(config: Mapping[str, Any]) -> float | None:
    """The force budget recorded in a regularize run's config (None: the run had none)."""
    value = (config.get("budget") or {}).get("force_budget")
    return None if value is None else float(value)


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
    screened = int((config.get("budget") or {}).get("screen_steps", 1)) > 0
    screen = f"{left}/{replicas} left in the screen" if screened else "no screen"
    line = (
        f"{budget:g}: chose {what}, {screen}, validation force MAE "
        f"{100 * rel:+.1f}% vs the MSE model it descends from; {within} of {total} candidates within budget"
    )
    if N_FRAMES in finals:
        frames = (config.get("budget") or {}).get("budget_frames", "val")
        kind = "held-out" if frames == "held" else "validation"
        line += f"; scored on {int(finals[N_FRAMES])} {kind} frames"
    if finals.get(PARENT_FALLBACK, 0.0) >= 0.5:
        line += " (no candidate after the parent was: the parent is returned)"
    if finals.get(OVER_BUDGET, 0.0) >= 0.5:
        line += " (none was: the most accurate candidate is returned, over budget)"
    return line
