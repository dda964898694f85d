"""The settings of `crmse stabilize`: one frozen dataclass, torch-free so the CLI's help reads it."""

from __future__ import annotations

from dataclasses import dataclass

from crmse_cli.defaults import TEMPERATURE_K
from crmse_cli.validate import check_config

FORCE_BUDGET = 0.10
"""Default force budget: the stabilized model's validation force MAE may rise by at most 10%."""


@dataclass(frozen=True)
class StabilizeConfig:
    """What `crmse stabilize` does, at the user's level (units in the names).

    Attributes:
        force_budget: largest accepted relative rise of the validation force MAE (0.10 = 10%);
            CRMSE keeps the most stable candidate within it (``regularize --force-budget``).
        temperature_K: temperature of the stability screens before and after, and of the force
            budget's own candidate screens (where the user means to run the model).
        replicas: replicas of each screen (64, as the study's).
        steps: BAOAB steps of each screen (0.5 fs each: 20000 = 10 ps, as the study's).
        record_every: keep a frame of every replica every this many steps.
        updates: CRMSE parameter updates; None: regularize's default.
        lambda_: CRMSE's lambda (regularize's ``--lambda`` units); None: regularize's default.
        budget_every: updates between the force budget's candidates.
        screen_replicas: replicas of each candidate's screen inside the regularize run.
        screen_steps: BAOAB steps of each candidate's screen.
        seed: seed of the screens and of CRMSE.
        processes: worker processes of the screens (``sample --processes``).
    """

    force_budget: float = FORCE_BUDGET
    temperature_K: float = TEMPERATURE_K
    replicas: int = 64
    steps: int = 20000
    record_every: int = 20
    updates: int | None = None
    lambda_: float | None = None
    budget_every: int = 25
    screen_replicas: int = 32
    screen_steps: int = 2000
    seed: int = 0
    processes: int = 1

    def __post_init__(self) -> None:
        check_config(self)  # ranges: crmse_cli/validate.py
