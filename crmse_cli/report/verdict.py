"""The verdict: did post-training stabilize the model, at what accuracy cost, by repair or softening?

One pure function of stored numbers (sample, evaluate and diagnose runs' final metrics), so
``crmse stabilize``'s last lines and the first screen of a comparison report say the same thing
in the same words. No torch, no registry here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from crmse_cli.analysis.study import PooledStability, fisher_left
from crmse_cli.train.budget import (
    CHOICE_REL_FORCE,
    CHOICE_UPDATE,
    N_CANDIDATES,
    N_FRAMES,
    OVER_BUDGET,
    PARENT_FALLBACK,
    REFERENCE_FORCE_MAE,
)

SOFTENING_RATIO = 0.8
"""Soft-mode Hessian ratio (model / original) below which a model is called softened: its
torsions lost more than 20% of their curvature. Repair keeps them near 1 (METHOD.md)."""
ERRORS = ("force", "energy")


@dataclass(frozen=True)
class Evidence:
    """One model's numbers: replicas that left the basin and its labelled-frame errors.

    Attributes:
        left: replicas of its screen that left the physical basin (None: not sampled).
        replicas: replicas of its screen.
        errors: ``<prefix>_force_mae``, ``_force_rmse``, ``_energy_mae``, ``_energy_rmse``
            (kcal/mol, kcal/mol/Å) by name; missing names are skipped.
    """

    left: int | None
    replicas: int | None
    errors: Mapping[str, float] = field(default_factory=dict)


def evidence(metrics: Mapping[str, float], errors: Mapping[str, float] | None = None) -> Evidence:
    """Evidence from a sample (or evaluate) run's final metrics (``n_left``, ``n_replicas``)."""
    left, reps = metrics.get("n_left"), metrics.get("n_replicas")
    return Evidence(
        left=None if left is None else int(left),
        replicas=None if reps is None else int(reps),
        errors=dict(errors if errors is not None else metrics),
    )


def change(before: float | None, after: float | None) -> float:
    """Relative change after / before - 1 (NaN when either is missing or before is not > 0)."""
    if before is None or after is None or not before > 0 or not math.isfinite(after):
        return math.nan
    return after / before - 1.0


def _pct(x: float) -> str:
    return f"{100 * x:+.1f}%" if math.isfinite(x) else "n/a"


def _p(p: float) -> str:
    return f"{p:.2g}" if p < 0.01 else f"{p:.2f}"


def stability_line(before: Evidence, after: Evidence) -> str:
    """``left the basin: 16/64 -> 2/64 (Fisher p = 0.0001)``, or why there is nothing to say."""
    if before.left is None or after.left is None or not before.replicas or not after.replicas:
        return "left the basin: not sampled"
    counts = f"{before.left}/{before.replicas} -> {after.left}/{after.replicas}"
    if before.left == 0:
        return f"no replica left the basin before ({counts}): nothing to repair at this length"
    p = fisher_left(
        PooledStability(before.replicas, before.left), PooledStability(after.replicas, after.left)
    )
    line = f"left the basin: {counts} (Fisher p = {_p(p)})"
    if after.left / after.replicas >= before.left / before.replicas:
        return line + ": not more stable"
    return line + (": fewer, but not significant at p < 0.05" if p >= 0.05 else "")


def control_line(after: Evidence, control: Evidence) -> str | None:
    """``against the lambda = 0 control: 1/64 vs 11/64 left (Fisher p = 0.0043)``; None if unsampled."""
    if after.left is None or control.left is None or not after.replicas or not control.replicas:
        return None
    p = fisher_left(
        PooledStability(control.replicas, control.left), PooledStability(after.replicas, after.left)
    )
    return (
        f"against the lambda = 0 control (same fine-tuning without L_C): {after.left}/{after.replicas} "
        f"vs {control.left}/{control.replicas} left (Fisher p = {_p(p)})"
    )


def error_line(before: Evidence, after: Evidence, *, prefix: str = "test", label: str = "test") -> str | None:
    """``test force MAE +4% (RMSE +2%); energy MAE -1% (RMSE +0.5%)``; None without errors."""
    parts = []
    for what in ERRORS:
        mae = change(before.errors.get(f"{prefix}_{what}_mae"), after.errors.get(f"{prefix}_{what}_mae"))
        rmse = change(before.errors.get(f"{prefix}_{what}_rmse"), after.errors.get(f"{prefix}_{what}_rmse"))
        if math.isfinite(mae) or math.isfinite(rmse):
            parts.append(f"{what} MAE {_pct(mae)} (RMSE {_pct(rmse)})")
    return f"{label} " + "; ".join(parts) if parts else None


def diagnosis_line(d: Mapping[str, float]) -> str | None:
    """``repair, not softening (torsions 1.00, stiff modes 1.00, collapsed frames lifted 9 kT)``.

    From a diagnose run's metrics; None when it has no soft-mode Hessian ratio.
    """
    soft = d.get("hessian_ratio_soft", math.nan)
    if not math.isfinite(soft):
        return None
    facts = [f"torsions {soft:.2f}"]
    stiff = d.get("hessian_ratio_stiff", math.nan)
    if math.isfinite(stiff):
        facts.append(f"stiff modes {stiff:.2f}")
    lift = d.get("collapse_lift_kT", math.nan)
    if math.isfinite(lift):
        facts.append(f"collapsed frames lifted {lift:.0f} kT")
    what = "softening, not repair" if soft < SOFTENING_RATIO else "repair, not softening"
    return f"{what} ({', '.join(facts)}; Hessian ratios model / original)"


def polish_line(budget: Mapping[str, float], force_budget: float | None = None) -> str:
    """Which update of an MSE polish the force budget picked, its force change, within budget or not.

    From the polish run's final metrics: its budget is relative to the pretrain ancestor
    (``budget_reference_val_force_mae``), its update 0 is the CRMSE model it continues.
    """
    update = int(budget[CHOICE_UPDATE])
    rel = budget.get(CHOICE_REL_FORCE, math.nan)
    frames = int(budget[N_FRAMES]) if N_FRAMES in budget else None
    on = f" on {frames} labelled frames no run trained on" if frames else ""
    limit = f"+{100 * force_budget:g}%" if force_budget is not None else "the"
    n = int(budget.get(N_CANDIDATES, 0))
    what = "update 0 (CRMSE as it ended)" if update == 0 else f"update {update}"
    change = f"force MAE {_pct(rel)} vs the original model{on}"
    if budget.get(OVER_BUDGET, 0.0) >= 0.5:
        return (
            f"MSE polish: none of {n} candidates within the {limit} force budget; kept the most "
            f"accurate, {what}: {change}, OVER budget"
        )
    return f"MSE polish: the {limit} force budget picked {what} of {n} candidates: {change}, within budget"


def budget_line(budget: Mapping[str, float], force_budget: float | None = None) -> str | None:
    """What the force budget chose: a polish's pick, or CRMSE's when it kept the original model.

    From a regularize run's final metrics (``budget_choice_update``, ``budget_parent_fallback``;
    a polish: :func:`polish_line`). None when there is nothing to say.
    """
    if REFERENCE_FORCE_MAE in budget and CHOICE_UPDATE in budget:  # budgeted against an ancestor
        return polish_line(budget, force_budget)
    if budget.get(PARENT_FALLBACK, 0.0) >= 0.5:
        return "no candidate within the force budget: kept the original model"
    if budget.get(CHOICE_UPDATE) == 0:
        return "no candidate within the force budget was more stable: kept the original model"
    return None


def verdict_lines(
    before: Evidence,
    after: Evidence,
    *,
    diagnosis: Mapping[str, float] | None = None,
    budget: Mapping[str, float] | None = None,
    force_budget: float | None = None,
    control: Evidence | None = None,
    wrote: str | None = None,
    error_prefix: str = "test",
    error_label: str = "test",
) -> list[str]:
    """The verdict, one fact a line, from the runs' stored metrics.

    Args:
        before: the original model's evidence.
        after: the post-trained model's.
        diagnosis: the diagnose run's final metrics (repair or softening), if any.
        budget: the post-training run's final metrics (the force budget's choice), if any: the
            MSE polish's when the recipe polished.
        force_budget: the budget that run was given (relative), to name it.
        control: the lambda = 0 control's evidence, if there is one.
        wrote: the exported model's path, if one was written.
        error_prefix: metric prefix of the errors compared (``test``, or ``heldout`` for a file).
        error_label: how the lines name those frames.
    """
    lines = [stability_line(before, after)]
    against = control_line(after, control) if control is not None else None
    if against is not None:
        lines.append(against)
    chosen = budget_line(budget or {}, force_budget)
    if chosen is not None:
        lines.append(chosen)
    kept = chosen is not None and REFERENCE_FORCE_MAE not in (budget or {})  # the original model
    errors = error_line(before, after, prefix=error_prefix, label=error_label)
    if errors is not None:
        lines.append(errors)
    diag = diagnosis_line(diagnosis) if diagnosis else None
    if diag is not None and not kept:
        lines.append(diag)
    if wrote:
        lines.append(f"wrote {wrote}")
    return lines
