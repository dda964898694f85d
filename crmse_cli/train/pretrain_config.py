"""The hyper-parameters of MSE pretraining: one frozen dataclass, loadable from ``examples/``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmse_cli.config import read_config_file, to_dict
from crmse_cli.defaults import PRETRAIN_MAX_EPOCHS, PRETRAIN_N_VAL
from crmse_cli.errors import CrmseError
from crmse_cli.model.config import MACE_DEFAULTS, ModelConfig
from crmse_cli.settings import setting
from crmse_cli.train.loss_weights import DEFAULT_ENERGY_WEIGHT, DEFAULT_FORCE_WEIGHT, LossWeights
from crmse_cli.validate import COUNT_RANGE, SEED_RANGE, ConfigError, check_config

SCHEDULES = ("cosine", "plateau", "constant")
N_VAL = PRETRAIN_N_VAL
"""Validation frames by default: 100 labelled frames the run does not train on."""
MAX_EPOCHS = PRETRAIN_MAX_EPOCHS
"""Epochs of the default cosine schedule (the measurement: :class:`PretrainConfig`)."""


@dataclass(frozen=True)
class PretrainConfig:
    """Hyper-parameters of MSE pretraining (units in the names; 0 switches optional parts off).

    Why these defaults. On ethanol (1000 frames of train_01: 950 / 50; PaiNN F = 64, L = 3;
    batch 32; ~1.5 s per epoch on one core shared with other jobs; one seed; 100 epochs, ~2.5
    min) the validation targets E MAE < 0.5 kcal/mol and F MAE < 1.0 kcal/mol/Å were first met
    at epoch 40 by cosine with EMA 0.99, at epoch 50 by plateau (factor 0.5, patience 5) and at
    epoch 60 by cosine alone; after the 100 epochs all three tested at E MAE 0.21-0.23 kcal/mol
    and F MAE 0.79-0.84 kcal/mol/Å. Cosine with the EMA got there fastest, so it is the default.

    Reproducible parents (issue 29). The schedule counts epochs only: cosine over ``max_epochs``
    steps, whatever the machine's speed, so the same seed, data, code and thread count give
    bit-identical weights (``tests/test_pretrain_repro.py``). Before 2026-12-07 the cosine also
    followed a 15-minute wall-clock budget and early stopping (patience 100 on 10 validation
    frames) ended some runs at lr ~8e-4 and others fully annealed: seeds differed in regime.
    ``max_minutes`` is now off by default; when given it only stops the run (the rate then has not
    annealed), and the run records ``stopped_by_time_budget``. Early stopping is off by default
    for the same reason (it is deterministic when on: epochs and validation loss only).
    ``max_epochs`` = 1000: one epoch of 200 training + 100 validation frames took 1.3 s on one
    thread (measured 2026-12-07, 8 epochs, a 2-core machine at load ~2.5; the 2026-12-06 parents
    ran 0.31 s per epoch of 190 + 10 frames on a quieter one), so a 200-frame parent anneals in
    5-22 min and a 900 + 100-frame parent (~4.5x the frames) in ~25 min on a quiet core. The
    2026-12-01 1000-frame parents reached test F MAE 0.51 kcal/mol/Å after 538 epochs.

    Validation. ``n_val`` labelled frames of the split's training part that the run does not
    train on: one seeded permutation of the training part, whose first ``n_val`` rows validate
    and next ``n_train`` rows train. A seed thus keeps its validation frames whatever ``n_train``
    and a smaller ``n_train`` trains on a subset of a larger one. rMD17's training parts hold
    1000 frames, so 1000 labelled frames are ``n_train = 900`` (the default preset); asking for
    more than the training part holds is refused in one line naming both fixes. The run's config
    records ``n_val_frames`` and ``val_frames_sha256`` (of the sorted dataset rows, int64).

    Attributes:
        model: the potential's :class:`ModelConfig` (its ``dtype`` is the training dtype).
        n_train: training frames drawn from the split's training part (None: all of it but the
            validation frames).
        n_val: validation frames, drawn from the split's training part besides the ``n_train``
            (default 100). Unset (None) only with ``val_fraction``.
        val_fraction: the rule before 2026-12-07, kept so old run configs read and rerun the same
            frames: ``n_train`` frames are drawn and this share of them validates (0.05: 950 / 50).
            None (default): ``n_val`` decides. Giving it replaces ``n_val``.
        batch_size: frames per optimiser step.
        lr: Adam's initial learning rate.
        schedule: "cosine" (default; decays to ``lr_min`` over ``max_epochs``), "plateau"
            (multiply by ``plateau_factor`` after ``plateau_patience`` epochs without a 1e-4
            relative improvement of the validation loss) or "constant".
        lr_min: the final rate of cosine and the floor of plateau.
        plateau_factor: learning-rate factor of the plateau schedule, in (0, 1).
        plateau_patience: epochs without improvement before the plateau schedule cuts the rate.
        early_stopping_patience: stop after this many epochs without a new best validation loss
            (0, the default: never; train the whole schedule).
        max_epochs: epochs to train; the cosine schedule spans them.
        max_minutes: optional wall-clock budget of training in minutes, summed over resumes
            (None/0, the default: none). Checked after each epoch; it stops the run without
            changing the schedule, and a run it stopped records ``stopped_by_time_budget`` = 1.
        grad_clip: clip the gradient's global norm to this (0/None: no clipping).
        ema_decay: decay of an exponential moving average of the weights, per step (0: off;
            0.99 averages over ~100 steps, ~3 epochs of 950 frames). When on, the EMA weights
            are validated, tested and saved as the checkpoints' potential.
        energy_weight: w_E of L_MSE, (kcal/mol)^-2.
        force_weight: w_F of L_MSE, (kcal/mol/Å)^-2.
        seed: seeds the frame draw, the weight initialisation and the batch order.
        device: "cpu" or "cuda[:n]".
    """

    model: ModelConfig = setting(factory=ModelConfig, help="The potential's settings: the [model] table.")
    n_train: int | None = setting(
        None,
        range=COUNT_RANGE,
        help="Training frames drawn from the split's training part.",
        unset="all but the validation frames",
    )
    n_val: int | None = setting(
        N_VAL,
        range=COUNT_RANGE,
        help="Validation frames: others of the split's training part, not trained on.",
    )
    val_fraction: float | None = setting(
        None, range="(0, 0.5]", help="The old rule: this share of n_train validates.", cli=False
    )
    batch_size: int = setting(32, range="[1, 1e9]", help="Frames per optimiser step.", cli=False)
    lr: float = setting(1e-3, range="(0, 1e3]", help="Adam's initial learning rate.", cli=False)
    schedule: str = setting("cosine", choices=SCHEDULES, help="Learning-rate schedule.", cli=False)
    lr_min: float = setting(1e-5, range="[0, 1e3]", help="Final rate of cosine, floor of plateau.", cli=False)
    plateau_factor: float = setting(
        0.5, range="(0, 1)", help="Rate factor of the plateau schedule.", cli=False
    )
    plateau_patience: int = setting(
        10, range="[0, 1e12]", help="Epochs without improvement before a plateau cut.", cli=False
    )
    early_stopping_patience: int = setting(
        0, range="[0, 1e12]", help="Stop after this many epochs without a new best (0: never).", cli=False
    )
    max_epochs: int = setting(
        MAX_EPOCHS, range=COUNT_RANGE, help="Epochs to train; the cosine schedule spans them."
    )
    max_minutes: float | None = setting(
        None,
        range="[0, 1e9]",
        help="Optional wall-clock budget in minutes: stops the run (recorded), never moves the schedule.",
        unset="none",
    )
    grad_clip: float | None = setting(
        10.0, range="[0, 1e300]", help="Gradient-norm clip (0: off).", cli=False
    )
    ema_decay: float = setting(0.99, range="[0, 1)", help="EMA of the weights per step (0: off).", cli=False)
    energy_weight: float = setting(
        DEFAULT_ENERGY_WEIGHT, range="[0, 1e300]", help="w_E of L_MSE, (kcal/mol)^-2.", cli=False
    )
    force_weight: float = setting(
        DEFAULT_FORCE_WEIGHT, range="[0, 1e300]", help="w_F of L_MSE, (kcal/mol/Å)^-2.", cli=False
    )
    seed: int = setting(0, range=SEED_RANGE, help="Seed of the frame draw, initialisation and batch order.")
    device: str = setting("cpu", help="cpu, cuda (the current GPU) or cuda:N (GPU N).")

    def __post_init__(self) -> None:
        check_config(self)  # types, ranges and choices declared on the fields
        if self.lr_min > self.lr:
            raise ConfigError(f"need lr > 0 and 0 <= lr_min <= lr, got lr {self.lr}, lr_min {self.lr_min}")
        if self.val_fraction is not None:  # the rule before issue 29 (old run configs read)
            if self.n_val not in (None, N_VAL):
                raise ConfigError(
                    f"give n_val ({self.n_val}) or val_fraction ({self.val_fraction}), not both; "
                    "n_val is the rule since 2026-12-07"
                )
            object.__setattr__(self, "n_val", None)  # recorded as it is used
        elif self.n_val is None:
            raise ConfigError("n_val must be set (validation frames), or val_fraction for the old rule")
        if self.energy_weight + self.force_weight <= 0.0:
            raise ConfigError(
                f"loss weights must be >= 0 and not both 0, got energy {self.energy_weight}, "
                f"forces {self.force_weight}"
            )

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
