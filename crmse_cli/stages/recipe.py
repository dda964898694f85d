"""The recipe `crmse stabilize` and `crmse reproduce` run: CRMSE, then an MSE polish the force budget cuts.

Issue 29's finding (docs/results.md, 2026-12-07, rMD17 ethanol, 200 frames, 3 seeds): CRMSE at
lambda 0.015 eV repairs the unstable model (11/52/29 of 64 replicas out -> 0/64) at +23-45%
force MAE, and the cost outlasts the repair. An MSE-only polish from the CRMSE run's raw weights
and Adam moments (``regularize --from CRMSE --lambda 0 --chain-source data``) buys most of the
cost back and keeps most of the repair (50 updates: 2, 2, 0 of 64 out at +7/+15/+10%). The
force budget picks the polish's length: a candidate every ``polish_every`` updates, scored on
every labelled frame the runs do not train on (``budget_frames = "held"``), no stability screen,
and the earliest one whose force MAE is within the budget of the pretrain ancestor's on the
same frames (``budget_pick = "first"``; none within: the most accurate one, flagged
``budget_over``). See :mod:`crmse_cli.train.budget`.

``recipe = "crmse"`` is the behaviour before: CRMSE alone, run with the configuration the caller
built (``stabilize``: the force budget's candidates along the CRMSE run; ``reproduce``: none).

Both journeys call :func:`run_recipe`; each names and reuses its runs with its own ``step``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from crmse_cli.errors import CrmseError
from crmse_cli.registry.store import Registry
from crmse_cli.stages import regularize as regularize_stage
from crmse_cli.stages.regularize_config import RegularizeConfig
from crmse_cli.stages.stabilize_config import POLISH_EVERY, POLISH_UPDATES, RECIPES
from crmse_cli.train.budget import BudgetConfig, configured_budget
from crmse_cli.workspace import Workspace

POLISH_CHAINS = 32
"""Negatives per polish update: fresh training frames (``chain_source = "data"``), as in issue 29's
polish. At lambda 0 they only feed the logged L_C, never the weights."""


@dataclass(frozen=True)
class Recipe:
    """What the CRMSE arm runs.

    Attributes:
        name: one of :data:`crmse_cli.stages.stabilize_config.RECIPES`.
        crmse: the CRMSE run's settings.
        polish: the MSE polish's settings (None: ``recipe = "crmse"``).
    """

    name: str
    crmse: RegularizeConfig
    polish: RegularizeConfig | None


def polish_config(
    crmse: RegularizeConfig, *, force_budget: float, updates: int = POLISH_UPDATES, every: int = POLISH_EVERY
) -> RegularizeConfig:
    """The MSE-only polish of a CRMSE run of settings ``crmse``, cut by the force budget.

    Lambda 0 with fresh training frames as negatives, no warm-up (it continues CRMSE's Adam
    moments, ``init = "raw"``), ``updates`` updates; a candidate every ``every`` updates, scored
    on the held-out labelled frames, the earliest within ``force_budget`` (relative to the pretrain
    ancestor's force MAE on those frames) chosen. Everything else is the CRMSE run's.
    """
    c = replace(
        crmse.contrastive,
        lambda_=0.0,
        chain_source="data",
        n_chains=POLISH_CHAINS,
        n_updates=updates,
        warmup_updates=0,
        init="raw",
        optimizer_init="inherit",
        lambda_control="fixed",
        lambda_decay_after=0,
    )
    budget = BudgetConfig(
        force_budget=force_budget,
        budget_every=every,
        screen_steps=0,
        budget_pick="first",
        budget_frames="held",
    )
    return replace(crmse, contrastive=c, budget=budget)


def recipe(
    name: str,
    crmse: RegularizeConfig,
    *,
    force_budget: float,
    polish_updates: int = POLISH_UPDATES,
    polish_every: int = POLISH_EVERY,
) -> Recipe:
    """The runs of recipe ``name`` from the CRMSE settings the caller built.

    ``crmse+polish``: CRMSE without candidates (its last weights feed the polish), then
    :func:`polish_config`. ``crmse``: ``crmse`` as given.
    """
    if name not in RECIPES:
        raise CrmseError(f"--recipe must be one of {', '.join(RECIPES)}, got {name!r}")
    if name == "crmse":
        return Recipe(name, crmse, None)
    bare = replace(crmse, budget=BudgetConfig())
    polish = polish_config(crmse, force_budget=force_budget, updates=polish_updates, every=polish_every)
    return Recipe(name, bare, polish)


Step = Callable[[str, Callable[[str], str], Callable[[str], str], str | None], str]
"""How a journey makes (or reuses, or resumes) one of its runs: ``step(what, start, resume,
parent)`` -> the run id. ``what`` is ``"crmse"`` or ``"polish"``; ``start(name)`` makes the run
under a fresh name, ``resume(run_id)`` continues an interrupted one; ``parent`` is the run it
must descend from."""


@dataclass(frozen=True)
class RecipeRuns:
    """The runs of one recipe: the CRMSE run and its polish (None without one)."""

    crmse: str
    polish: str | None = None

    @property
    def model(self) -> str:
        """The recipe's model: the polish when there is one."""
        return self.polish or self.crmse


def run_recipe(
    ws: Workspace, reg: Registry, source: str, plan: Recipe, *, step: Step, parent: str | None
) -> RecipeRuns:
    """Run (reuse, resume) ``plan`` from model ``source`` (``parent``: its run, if any).

    Raises:
        CrmseError: the CRMSE step reused is one that kept candidates (``--recipe crmse``): its
            final weights are its budget's choice, not the run's end, so no polish continues it.
    """

    def runner(cfg: RegularizeConfig, start_from: Callable[[], str]) -> tuple[Callable[[str], str], ...]:
        return (
            lambda name: regularize_stage.regularize(ws, start_from(), cfg, name=name).run_id,
            lambda rid: regularize_stage.regularize(ws, None, cfg, resume=rid).run_id,
        )

    start, resume = runner(plan.crmse, lambda: source)
    crmse = step("crmse", start, resume, parent)
    if plan.polish is None:
        return RecipeRuns(crmse)
    run = reg.get_run(crmse)
    if configured_budget(run.config) is not None:
        raise CrmseError(
            f"run {run.name!r} is a CRMSE step of --recipe crmse (it kept force-budget candidates), "
            "which no polish continues; pass --name NEW, or --recipe crmse"
        )
    start, resume = runner(plan.polish, lambda: crmse)
    return RecipeRuns(crmse, step("polish", start, resume, crmse))
