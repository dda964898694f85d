"""The settings of `crmse stabilize`: one frozen dataclass, torch-free so the CLI's help reads it."""

from __future__ import annotations

from dataclasses import dataclass

from crmse_cli.defaults import TEMPERATURE_K
from crmse_cli.settings import setting
from crmse_cli.train.budget import PANEL
from crmse_cli.validate import COUNT_RANGE, PROCESSES_RANGE, SEED_RANGE, TEMPERATURE_RANGE, check_config

FORCE_BUDGET = 0.10
"""Default force budget: the stabilized model's held-out force MAE may rise by at most 10%."""
RECIPES = ("crmse+polish", "crmse")
"""``crmse+polish``: CRMSE, then an MSE-only polish whose length the force budget picks (issue 29's
recipe, stages/recipe.py); ``crmse``: CRMSE alone with the budget's candidates along it (before)."""
POLISH_UPDATES = 100
"""Updates of the MSE polish (issue 29: 50-100 took back 55-85% of CRMSE's force cost)."""
POLISH_EVERY = 10
"""Updates between the polish's candidates (issue 29's rule: every 10)."""


@dataclass(frozen=True)
class StabilizeConfig:
    """What `crmse stabilize` does, at the user's level (units in the names).

    Attributes:
        force_budget: largest accepted relative rise of the force MAE over the original model's
            (0.10 = 10%), on labelled frames no step trains on. ``crmse+polish``: the polish's
            earliest candidate within it; ``crmse``: CRMSE's most stable candidate within it.
        recipe: ``crmse+polish`` (CRMSE, then the MSE polish the budget cuts) or ``crmse``.
        polish_updates: updates of the MSE polish (``crmse+polish``).
        polish_every: updates between the polish's candidates (``crmse+polish``).
        temperature_K: temperature of the stability screens before and after, and of the force
            budget's own candidate screens (where the user means to run the model).
        replicas: replicas of each screen (64, as the study's).
        steps: BAOAB steps of each screen (0.5 fs each: 20000 = 10 ps, as the study's).
        record_every: keep a frame of every replica every this many steps.
        updates: CRMSE parameter updates; None: regularize's default.
        lambda_: CRMSE's lambda (regularize's ``--lambda`` units); None: regularize's default.
        budget_every: updates between CRMSE's candidates (``crmse``).
        screen_replicas: replicas of each CRMSE candidate's screen (``crmse``).
        screen_steps: BAOAB steps of each CRMSE candidate's screen (``crmse``).
        seed: seed of the screens and of CRMSE.
        processes: worker processes of the screens (``sample --processes``).
    """

    force_budget: float = setting(
        FORCE_BUDGET,
        range="(0, 10]",
        help="Largest relative rise of the force MAE over the original model's, on held-out labelled frames.",
    )
    recipe: str = setting(
        RECIPES[0],
        choices=RECIPES,
        help="crmse+polish: CRMSE, then an MSE-only polish whose length the force budget picks "
        "(the earliest candidate within it); crmse: CRMSE alone, its most stable candidate within budget.",
    )
    polish_updates: int = setting(
        POLISH_UPDATES, range=COUNT_RANGE, help="Updates of the MSE polish.", panel=PANEL
    )
    polish_every: int = setting(
        POLISH_EVERY, range=COUNT_RANGE, help="Updates between the polish's candidates.", panel=PANEL
    )
    temperature_K: float = setting(
        TEMPERATURE_K, range=TEMPERATURE_RANGE, help="Where you will run the model: the screens' temperature."
    )
    replicas: int = setting(64, range="[1, 1e6]", help="Replicas of each screen.")
    steps: int = setting(20000, range=COUNT_RANGE, help="BAOAB steps of each screen (0.5 fs each).")
    record_every: int = setting(20, range=COUNT_RANGE, help="Keep a frame of every replica every N steps.")
    updates: int | None = setting(None, range=COUNT_RANGE, help="CRMSE updates.", unset="regularize's")
    lambda_: float | None = setting(None, range="[0, 1e6]", help="CRMSE's lambda.", unset="regularize's")
    budget_every: int = setting(
        25, range=COUNT_RANGE, help="Updates between CRMSE's candidates (--recipe crmse).", panel=PANEL
    )
    screen_replicas: int = setting(
        32, range="[1, 1e6]", help="Replicas of each CRMSE candidate's screen (--recipe crmse).", panel=PANEL
    )
    screen_steps: int = setting(
        2000, range=COUNT_RANGE, help="BAOAB steps of that screen (0.5 fs each; --recipe crmse).", panel=PANEL
    )
    seed: int = setting(0, range=SEED_RANGE, help="Seed of the screens and of CRMSE.")
    processes: int = setting(1, range=PROCESSES_RANGE, help="Worker processes of the screens.")

    def __post_init__(self) -> None:
        check_config(self)  # types and ranges declared on the fields: crmse_cli/validate.py
