"""Optimisation helpers of the trainers: the learning-rate schedule and a weight average.

Both keep their state in plain types and tensors (``state_dict``) so checkpoints load with
``torch.load(weights_only=True)`` and a resumed run continues exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from crmse_cli.train.pretrain_config import PretrainConfig


class LRSchedule:
    """Learning rate of each step: cosine over ``max_epochs``, plateau cuts, or constant.

    The rate depends on the step count and validation losses only, never on the clock, so a run
    is the same on a fast and a slow machine (issue 29).
    """

    def __init__(self, config: PretrainConfig, steps_per_epoch: int) -> None:
        self.config = config
        self.total_steps = max(1, config.max_epochs * steps_per_epoch)
        self.lr = config.lr
        self.best = math.inf
        self.bad_epochs = 0

    def progress(self, step: int) -> float:
        """Fraction of the run's steps done, in [0, 1]."""
        return min(1.0, step / self.total_steps)

    def on_step(self, step: int) -> float:
        """The rate for the next step."""
        cfg = self.config
        if cfg.schedule == "cosine":
            p = self.progress(step)
            self.lr = cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + math.cos(math.pi * p))
        return self.lr

    def on_epoch(self, val_loss: float) -> None:
        """Plateau bookkeeping after validation."""
        cfg = self.config
        if cfg.schedule != "plateau":
            return
        if val_loss < self.best * (1.0 - 1e-4):
            self.best, self.bad_epochs = val_loss, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > cfg.plateau_patience:
            self.lr, self.bad_epochs = max(cfg.lr_min, self.lr * cfg.plateau_factor), 0

    def state_dict(self) -> dict[str, Any]:
        """The schedule's state for a checkpoint."""
        return {"lr": self.lr, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.lr, self.best, self.bad_epochs = (
            float(state["lr"]),
            float(state["best"]),
            int(state["bad_epochs"]),
        )


class WeightAverage:
    """Exponential moving average of parameters with TensorFlow's warm-up.

    decay_n = min(decay, (1 + n) / (10 + n)), so early averages do not cling to the
    initialisation.
    """

    def __init__(self, parameters: list[torch.nn.Parameter], decay: float) -> None:
        self.parameters = parameters
        self.decay = decay
        self.updates = 0
        self.shadow = [p.detach().clone() for p in parameters]

    @torch.no_grad()
    def update(self) -> None:
        """Move the averages towards the live parameters (call after each optimiser step)."""
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for s, p in zip(self.shadow, self.parameters, strict=True):
            s.lerp_(p.detach(), 1.0 - d)
        self.updates += 1

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the live parameters and the averages (call twice to undo)."""
        for s, p in zip(self.shadow, self.parameters, strict=True):
            tmp = p.detach().clone()
            p.copy_(s)
            s.copy_(tmp)

    def state_dict(self) -> dict[str, Any]:
        """The averages and the update count for a checkpoint (tensors on the CPU)."""
        return {"updates": self.updates, "shadow": [s.detach().cpu().clone() for s in self.shadow]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.updates = int(state["updates"])
        for s, v in zip(self.shadow, state["shadow"], strict=True):
            s.copy_(v)


@contextmanager
def averaged(ema: WeightAverage | None) -> Iterator[None]:
    """Hold the averaged weights in the model inside the block (no-op for ``None``)."""
    if ema is None:
        yield
        return
    ema.swap()
    try:
        yield
    finally:
        ema.swap()
