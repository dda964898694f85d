"""The hyper-parameters of MSE pretraining: one frozen dataclass, loadable from ``examples/``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmse_cli.config import read_config_file, to_dict
from crmse_cli.errors import CrmseError
from crmse_cli.model.config import MACE_DEFAULTS, ModelConfig
from crmse_cli.train.losses import DEFAULT_ENERGY_WEIGHT, DEFAULT_FORCE_WEIGHT, LossWeights
from crmse_cli.validate import check_config

SCHEDULES = ("cosine", "plateau", "constant")


@dataclass(frozen=True)
class PretrainConfig:
    """Hyper-parameters of MSE pretraining (units in the names; 0 switches optional parts off).

    Why these defaults. On ethanol (1000 frames of train_01: 950 / 50; PaiNN F = 64, L = 3;
    batch 32; ~1.5 s per epoch on one core shared with other jobs; one seed; 100 epochs, ~2.5
    min) the validation targets E MAE < 0.5 kcal/mol and F MAE < 1.0 kcal/mol/Å were first met
    at epoch 40 by cosine with EMA 0.99, at epoch 50 by plateau (factor 0.5, patience 5) and at
    epoch 60 by cosine alone; after the 100 epochs all three tested at E MAE 0.21-0.23 kcal/mol
    and F MAE 0.79-0.84 kcal/mol/Å. Cosine with the EMA got there fastest, and cosine also ends
    a time-budgeted run at a small rate, so it is the default. The 15-minute budget (~600 epochs)
    leaves a wide margin; early stopping ends runs whose validation loss has stalled.

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
        ema_decay: decay of an exponential moving average of the weights, per step (0: off;
            0.99 averages over ~100 steps, ~3 epochs of 950 frames). When on, the EMA weights
            are validated, tested and saved as the checkpoints' potential.
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
    ema_decay: float = 0.99
    energy_weight: float = DEFAULT_ENERGY_WEIGHT
    force_weight: float = DEFAULT_FORCE_WEIGHT
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_config(self)
        if self.schedule not in SCHEDULES:
            raise CrmseError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        for name in ("batch_size", "max_epochs"):
            if int(getattr(self, name)) < 1:
                raise CrmseError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and 0 <= self.lr_min <= self.lr):
            raise CrmseError(f"need lr > 0 and 0 <= lr_min <= lr, got lr {self.lr}, lr_min {self.lr_min}")
        if not 0 < self.val_fraction <= 0.5:
            raise CrmseError(f"val_fraction must lie in (0, 0.5], got {self.val_fraction}")
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


RESUMABLE_FIELDS = ("max_epochs", "max_minutes", "early_stopping_patience", "device")
"""Config fields a resumed run may change (budgets and placement; nothing that alters the model)."""


def resumed_config(
    stored: PretrainConfig, given: PretrainConfig | None, overrides: dict[str, Any] | None
) -> PretrainConfig:
    """``stored`` with the resumable fields of ``given`` and ``overrides``; anything else refused."""
    changes: dict[str, Any] = {}
    if given is not None:
        old, new = to_dict(stored), to_dict(given)
        differ = sorted(k for k in new if new[k] != old[k])
        bad = [k for k in differ if k not in RESUMABLE_FIELDS]
        if bad:
            raise CrmseError(
                f"the resumed run was started with other {', '.join(bad)}; "
                "resume with its config or start a new run"
            )
        changes = {k: getattr(given, k) for k in differ}
    changes.update({k: v for k, v in (overrides or {}).items() if v is not None})
    bad = sorted(set(changes) - set(RESUMABLE_FIELDS))
    if bad:
        raise CrmseError(f"a resumed run cannot change {', '.join(bad)}; only {', '.join(RESUMABLE_FIELDS)}")
    try:
        return dataclasses.replace(stored, **changes)
    except (TypeError, ValueError) as exc:
        raise CrmseError(f"invalid config override: {exc}") from exc


def architecture_overrides(architecture: str | None, path: Path | str | None = None) -> dict[str, Any]:
    """``load_config`` overrides (``model__...``) for ``--architecture``.

    For ``mace`` they add :data:`crmse_cli.model.config.MACE_DEFAULTS` for every model field the
    config file at ``path`` does not set, so a PaiNN-sized default does not become a MACE.
    """
    if architecture is None:
        return {}
    out: dict[str, Any] = {"model__architecture": architecture}
    if architecture == "mace":
        table = read_config_file(path).get("model", {}) if path else {}
        out.update({f"model__{k}": v for k, v in MACE_DEFAULTS.items() if k not in table})
    return out
