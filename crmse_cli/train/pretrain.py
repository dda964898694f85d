"""MSE pretraining of a GNN potential on energies and forces, resumable to the bit.

The loop (:class:`PretrainTrainer`) draws ``n_train`` frames of a split's training part, holds
out a validation share, fits the potential's per-element shift and scale on the training frames,
and runs Adam on L_MSE (``crmse_cli.train.losses``) with gradient clipping, a learning-rate
schedule, an optional exponential moving average (EMA) of the weights, early stopping on the
validation loss and a wall-clock budget. It yields one :class:`EpochRecord` per epoch and calls
attached observers (checkpoint writing, registry logging, progress bars); it knows nothing of
the registry.

Schedule. ``cosine`` (the default) anneals the learning rate from ``lr`` to ``lr_min`` over the
run's progress p = max(epochs done / max_epochs, time used / max_minutes), so a time-budgeted run
still ends at the small learning rate that gives the last factor in accuracy. ``plateau`` halves
the rate when the validation loss stalls (``plateau_factor``, ``plateau_patience``). On ethanol
(1000 frames, one core) cosine reached a lower validation loss than plateau at equal wall-clock
time (see ``PretrainConfig``). With a time budget the cosine schedule depends on the machine's
speed; runs without ``max_minutes`` are deterministic for a seed, resumed or not.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from crmse_cli.config import to_dict
from crmse_cli.data.dataset import Dataset, normalize_split
from crmse_cli.errors import CrmseError
from crmse_cli.model.config import ModelConfig
from crmse_cli.model.potential import Potential, build_potential
from crmse_cli.train.data import FrameSet, select_frames, shuffled_batches
from crmse_cli.train.losses import (
    DEFAULT_ENERGY_WEIGHT,
    DEFAULT_FORCE_WEIGHT,
    ErrorMetrics,
    LossWeights,
    energy_force_loss,
    evaluate_errors,
)

SCHEDULES = ("cosine", "plateau", "constant")
CHECKPOINT_STAGE = "pretrain"


@dataclass(frozen=True)
class PretrainConfig:
    """Hyper-parameters of MSE pretraining (units in the names; 0 switches optional parts off).

    Attributes:
        model: the potential's :class:`ModelConfig` (its ``dtype`` is the training dtype).
        n_train: frames drawn from the split's training part, validation included (None: all).
        val_fraction: share of those held out for validation (0.05: rMD17's usual 950 / 50).
        batch_size: frames per optimiser step.
        lr: Adam's initial learning rate.
        schedule: "cosine" (default; decays to ``lr_min`` over the run), "plateau" (multiply by
            ``plateau_factor`` after ``plateau_patience`` epochs without a 1e-4 relative
            improvement of the validation loss) or "constant".
        lr_min: the final rate of cosine and the floor of plateau.
        plateau_factor: learning-rate factor of the plateau schedule, in (0, 1).
        plateau_patience: epochs without improvement before the plateau schedule cuts the rate.
        early_stopping_patience: stop after this many epochs without a new best validation loss
            (0: never).
        max_epochs: the most epochs to train.
        max_minutes: wall-clock budget of training in minutes, summed over resumes (0/None:
            none). Checked after each epoch.
        grad_clip: clip the gradient's global norm to this (0/None: no clipping).
        ema_decay: decay of an exponential moving average of the weights (0: off). When on, the
            EMA weights are validated, tested and saved as the checkpoints' potential.
        energy_weight: w_E of L_MSE, (kcal/mol)^-2.
        force_weight: w_F of L_MSE, (kcal/mol/Å)^-2.
        seed: seeds the frame draw, the weight initialisation and the batch order.
        device: "cpu" or "cuda[:n]".
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    n_train: int | None = None
    val_fraction: float = 0.05
    batch_size: int = 32
    lr: float = 1e-3
    schedule: str = "cosine"
    lr_min: float = 1e-5
    plateau_factor: float = 0.5
    plateau_patience: int = 10
    early_stopping_patience: int = 100
    max_epochs: int = 2000
    max_minutes: float | None = 15.0
    grad_clip: float | None = 10.0
    ema_decay: float = 0.0
    energy_weight: float = DEFAULT_ENERGY_WEIGHT
    force_weight: float = DEFAULT_FORCE_WEIGHT
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise CrmseError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        for name in ("batch_size", "max_epochs"):
            if int(getattr(self, name)) < 1:
                raise CrmseError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and 0 <= self.lr_min <= self.lr):
            raise CrmseError(f"need lr > 0 and 0 <= lr_min <= lr, got lr {self.lr}, lr_min {self.lr_min}")
        if not 0 < self.plateau_factor < 1:
            raise CrmseError(f"plateau_factor must lie in (0, 1), got {self.plateau_factor}")
        if not 0 <= self.ema_decay < 1:
            raise CrmseError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")
        if self.early_stopping_patience < 0 or self.plateau_patience < 0:
            raise CrmseError("patience values must be >= 0")
        LossWeights(self.energy_weight, self.force_weight)

    @property
    def weights(self) -> LossWeights:
        """The loss weights w_E, w_F."""
        return LossWeights(self.energy_weight, self.force_weight)

    @property
    def budget_s(self) -> float | None:
        """The wall-clock budget in seconds, None when unlimited."""
        return float(self.max_minutes) * 60.0 if self.max_minutes else None


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch measured (losses dimensionless, MAEs in kcal/mol and kcal/mol/Å)."""

    epoch: int
    step: int
    train_loss: float
    val_loss: float
    val_energy_mae: float
    val_force_mae: float
    lr: float
    elapsed_s: float
    improved: bool


class LRSchedule:
    """Learning rate of each step: cosine over the run's progress, plateau cuts, or constant."""

    def __init__(self, config: PretrainConfig, steps_per_epoch: int) -> None:
        self.config = config
        self.total_steps = max(1, config.max_epochs * steps_per_epoch)
        self.lr = config.lr
        self.best = math.inf
        self.bad_epochs = 0

    def progress(self, step: int, elapsed_s: float) -> float:
        """Fraction of the run done, in [0, 1]: by steps, or by time if that is further."""
        p = step / self.total_steps
        budget = self.config.budget_s
        if budget:
            p = max(p, elapsed_s / budget)
        return min(1.0, p)

    def on_step(self, step: int, elapsed_s: float) -> float:
        """The rate for the next step."""
        cfg = self.config
        if cfg.schedule == "cosine":
            p = self.progress(step, elapsed_s)
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
        return {"lr": self.lr, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr, self.best, self.bad_epochs = float(state["lr"]), float(state["best"]), int(state["bad_epochs"])


class WeightAverage:
    """Exponential moving average of parameters with TensorFlow's warm-up
    (decay_n = min(decay, (1 + n) / (10 + n))), so early averages do not cling to the
    initialisation."""

    def __init__(self, parameters: list[torch.nn.Parameter], decay: float) -> None:
        self.parameters = parameters
        self.decay = decay
        self.updates = 0
        self.shadow = [p.detach().clone() for p in parameters]

    @torch.no_grad()
    def update(self) -> None:
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
        return {"updates": self.updates, "shadow": [s.detach().cpu().clone() for s in self.shadow]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        for s, v in zip(self.shadow, state["shadow"], strict=True):
            s.copy_(v)
