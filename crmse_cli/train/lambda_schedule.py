"""The effective lambda of a CRMSE run: a decay once the repair is done, and a budget controller.

Pure Python (no torch), so the schedule is unit-tested on scripted sequences. The effective
weight of L_C at an update is ``lambda_internal * factor``, with ``factor`` the product of two
multipliers, each 1 by default (today's fixed lambda):

- **decay** (``lambda_decay_after`` > 0): once the chains' outside-support share (logged as
  ``chains_outside``) has been <= ``lambda_decay_threshold`` for ``lambda_decay_after``
  consecutive updates, the multiplier falls linearly to 0 over the next
  ``lambda_decay_updates`` updates and stays there. The decay is latched: chains that leave the
  support again later do not restart it (a decay that re-arms would oscillate with the noise of
  a few chains crossing the margin; a controller that raises lambda again is the budget mode).
  Linear rather than geometric: it reaches 0 in a stated number of updates, so the last
  updates of the run are plain MSE fine-tuning and "does the cost leave" can be read off them.
- **budget** (``lambda_control = "budget"``): after each validation the stage reports whether
  the validation force MAE is under (1 + force_budget) x the parent's; under budget the
  multiplier is multiplied by ``lambda_control_up``, over budget divided by
  ``lambda_control_down``, bounded to [1/``lambda_control_range``, ``lambda_control_range``]:
  a Lagrange multiplier on the force-error constraint, steered by dual ascent in log space.

An update's factor is decided by what was measured before it (the outside share of the updates
before, the last validation), so it is the same in a resumed run (:meth:`state_dict`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crmse_cli.train.contrastive_config import ContrastiveConfig

LAMBDA_CONTROLS = ("fixed", "budget")
"""How lambda is steered online: not at all, or like a Lagrange multiplier on the force budget."""


@dataclass
class LambdaSchedule:
    """The multiplier of lambda at each update (see the module docstring).

    Attributes:
        decay_after: consecutive low-outside updates before the decay starts (0: never).
        decay_threshold: an update is "low" when its outside share is <= this (NaN is not low).
        decay_updates: updates over which the decay multiplier goes linearly from 1 to 0.
        control: "fixed" or "budget".
        up: budget mode's factor under budget (> 1).
        down: budget mode's divisor over budget (> 1).
        bound: budget mode's multiplier stays in [1/bound, bound].
    """

    decay_after: int = 0
    decay_threshold: float = 0.02
    decay_updates: int = 100
    control: str = "fixed"
    up: float = 1.25
    down: float = 2.0
    bound: float = 100.0
    low_run: int = 0  # consecutive low-outside updates so far
    decay_step: int = 0  # the next update's place in the decay, 1-based (0: not started)
    control_factor: float = 1.0

    @classmethod
    def of(cls, cfg: ContrastiveConfig) -> LambdaSchedule:
        """The schedule a config asks for."""
        return cls(
            decay_after=cfg.lambda_decay_after,
            decay_threshold=cfg.lambda_decay_threshold,
            decay_updates=cfg.lambda_decay_updates,
            control=cfg.lambda_control,
            up=cfg.lambda_control_up,
            down=cfg.lambda_control_down,
            bound=cfg.lambda_control_range,
        )

    @property
    def decay_factor(self) -> float:
        """The decay multiplier: 1 before the decay, then linearly down to 0."""
        if self.decay_step == 0:
            return 1.0
        return max(0.0, 1.0 - self.decay_step / max(1, self.decay_updates))

    @property
    def factor(self) -> float:
        """Multiplier of lambda for the next update."""
        return self.decay_factor * self.control_factor

    def observe_outside(self, share: float) -> None:
        """Account for one finished update whose chains had outside-support share ``share``."""
        if self.decay_step > 0:
            self.decay_step += 1
            return
        if self.decay_after <= 0:
            return
        low = math.isfinite(share) and share <= self.decay_threshold
        self.low_run = self.low_run + 1 if low else 0
        if self.low_run >= self.decay_after:
            self.decay_step = 1  # the next update is the first of the decay

    def observe_validation(self, under_budget: bool) -> None:
        """Budget mode: raise lambda under budget, lower it over (no-op when fixed)."""
        if self.control != "budget":
            return
        step = self.up if under_budget else 1.0 / self.down
        self.control_factor = min(self.bound, max(1.0 / self.bound, self.control_factor * step))

    def state_dict(self) -> dict[str, Any]:
        """The counters and the controller's multiplier (plain types) for a checkpoint."""
        return {"low_run": self.low_run, "decay_step": self.decay_step, "control_factor": self.control_factor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.low_run = int(state["low_run"])
        self.decay_step = int(state["decay_step"])
        self.control_factor = float(state["control_factor"])


def under_budget(val_force_mae: float, parent_val_force_mae: float, force_budget: float) -> bool:
    """Whether a validation force MAE is within (1 + force_budget) x the parent's."""
    return val_force_mae <= (1.0 + force_budget) * parent_val_force_mae
