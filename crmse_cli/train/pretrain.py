"""MSE pretraining of a GNN potential on energies and forces, resumable to the bit.

The loop (:class:`PretrainTrainer`) draws ``n_train`` training and ``n_val`` validation frames of a
split's training part (disjoint), fits the potential's per-element shift and scale on the training frames,
and runs Adam on L_MSE (``crmse_cli.train.losses``) with gradient clipping, a learning-rate
schedule, an optional exponential moving average (EMA) of the weights, early stopping on the
validation loss and an optional wall-clock budget. It yields one :class:`EpochRecord` per epoch and calls
attached observers (checkpoint writing, registry logging, progress bars); it knows nothing of
the registry.

Schedule. ``cosine`` (the default) anneals the learning rate from ``lr`` to ``lr_min`` over
``max_epochs`` epochs of optimiser steps; ``plateau`` halves the rate when the validation loss
stalls (``plateau_factor``, ``plateau_patience``). No schedule reads the clock, so a run is
deterministic for a seed, data, code and thread count, resumed or not
(``tests/test_pretrain_repro.py``). The optional ``max_minutes`` only stops a run (stop reason
``time_budget``, before the cosine has annealed). The measurements behind the defaults are in
``PretrainConfig``'s docstring.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from crmse_cli.config import from_dict, to_dict
from crmse_cli.data.dataset import Dataset, normalize_split
from crmse_cli.errors import CrmseError
from crmse_cli.model.build import build_potential
from crmse_cli.model.checkpoint import load_checkpoint, save_checkpoint
from crmse_cli.model.checkpoint_extra import CheckpointExtra
from crmse_cli.model.potential import Potential
from crmse_cli.train.data import FrameSet, center_energies, check_device, select_frames, shuffled_batches
from crmse_cli.train.distributed import DistContext
from crmse_cli.train.loop import TrainingLoop
from crmse_cli.train.losses import ErrorMetrics, energy_force_loss, error_metrics, evaluate_errors
from crmse_cli.train.optim import LRSchedule, averaged
from crmse_cli.train.pretrain_config import RESUMABLE_FIELDS, SCHEDULES, PretrainConfig, resumed_config

__all__ = [
    "RESUMABLE_FIELDS",
    "SCHEDULES",
    "EpochRecord",
    "PretrainConfig",
    "PretrainTrainer",
    "error_metrics",
]

CHECKPOINT_STAGE = "pretrain"


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


Observer = Callable[[EpochRecord], None]


class PretrainTrainer:
    """Epoch loop of MSE pretraining; iterate :meth:`epochs`.

    Build it with :meth:`create` (fresh) or :meth:`from_checkpoint` (resume).

    Args:
        potential: the model, shift and scale already fitted, on the training device.
        train: training frames (same device and dtype as the model).
        val: validation frames.
        config: the hyper-parameters.
        meta: recorded in checkpoints: ``dataset`` (name) and ``split`` ("01".."05").
    """

    def __init__(
        self,
        potential: Potential,
        train: FrameSet,
        val: FrameSet,
        config: PretrainConfig,
        *,
        meta: dict[str, Any] | None = None,
        dist: DistContext | None = None,
    ) -> None:
        self.dist = dist or DistContext()
        if len(val) == 0:
            raise CrmseError("no validation frames: set n_val >= 1 (the best epoch is picked on them)")
        self.potential = potential.train()
        self.train_set, self.val_set = train, val
        self.config = config
        self.meta = dict(meta or {})
        self.params = [p for p in potential.parameters() if p.requires_grad]
        self.loop: TrainingLoop[EpochRecord] = TrainingLoop(
            self.params,
            lr=config.lr,
            grad_clip=config.grad_clip or 0.0,
            ema_decay=config.ema_decay,
            dist=self.dist,
        )
        self.optimizer = self.loop.optimizer
        self.ema = self.loop.ema
        self.schedule = LRSchedule(config, math.ceil(len(train) / config.batch_size))
        self.generator = torch.Generator().manual_seed(config.seed)  # batch order
        self.epoch = 0
        self.step = 0
        self.elapsed_s = 0.0
        self.best_loss = math.inf
        self.best_epoch = 0
        self.best_weights: dict[str, Tensor] | None = None
        self.last: EpochRecord | None = None
        self.stop_reason: str | None = None

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        config: PretrainConfig,
        data: Dataset,
        split: str | int = "01",
        *,
        dist: DistContext | None = None,
    ) -> PretrainTrainer:
        """A fresh trainer: draw frames, build the potential (seeded), fit shift and scale."""
        check_device(config.device)
        part, added = data.split(split)[0], data.added_rows(split)
        train_rows, val_rows = select_frames(
            part[~np.isin(part, added)],
            config.n_train,
            config.n_val,
            config.seed,
            val_fraction=config.val_fraction,
            always=added,
        )
        # Seeded without touching the caller's global generator.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            potential = build_potential(config.model, data.species.tolist())
        potential.to(config.device)
        potential.fit_shift_scale(data.species, data.energies[train_rows], data.forces[train_rows])
        dtype = config.model.torch_dtype
        train = FrameSet.from_dataset(data, train_rows, dtype=dtype, device=config.device)
        val = FrameSet.from_dataset(data, val_rows, dtype=dtype, device=config.device)
        center_energies(potential, train)
        return cls(
            potential,
            train,
            val,
            config,
            meta={"dataset": data.name, "split": normalize_split(split)},
            dist=dist,
        )

    @classmethod
    def from_checkpoint(
        cls,
        path: Any,
        data: Dataset,
        *,
        config: PretrainConfig | None = None,
        overrides: dict[str, Any] | None = None,
        dist: DistContext | None = None,
        trust_code: bool = False,
    ) -> PretrainTrainer:
        """Resume from a ``last`` checkpoint written by :meth:`save_last`.

        Args:
            path: the checkpoint file.
            data: the dataset the run trained on.
            config: if given, it must equal the saved config except in :data:`RESUMABLE_FIELDS`,
                whose values it sets.
            overrides: new values of :data:`RESUMABLE_FIELDS` (None values are ignored).
            dist: this process's place in a data-parallel run (default: a single process).
            trust_code: the file may run the code it stores (a MACE model; see ``load_checkpoint``).
        """
        potential, payload = load_checkpoint(path, device="cpu", trust_code=trust_code)
        extra = CheckpointExtra.of(payload, where=str(path))
        if extra.stage != CHECKPOINT_STAGE or "optimizer" not in extra.state:
            raise CrmseError(
                f"{path} is not a resumable pretrain checkpoint; resume from a run's 'last' checkpoint"
            )
        if extra.dataset != data.name or list(extra.species or ()) != data.species.tolist():
            raise CrmseError(f"{path} was trained on dataset {extra.dataset!r}, not {data.name!r}")
        if extra.config is None or extra.train_indices is None or extra.val_indices is None:
            raise CrmseError(
                f"{path} does not record its config and frames; resume from a run's 'last' checkpoint"
            )
        stored = from_dict(PretrainConfig, dict(extra.config), where=f"{path}: config")
        config = resumed_config(stored, config, overrides)
        check_device(config.device)
        potential.to(config.device)
        dtype = config.model.torch_dtype
        train = FrameSet.from_dataset(data, extra.train_indices, dtype=dtype, device=config.device)
        val = FrameSet.from_dataset(data, extra.val_indices, dtype=dtype, device=config.device)
        trainer = cls(
            potential, train, val, config, meta={"dataset": data.name, "split": extra.split}, dist=dist
        )
        trainer.load_state_dict(extra.state)
        return trainer

    # -- observers -------------------------------------------------------------------------------
    def attach(self, fn: Observer, every: int = 1) -> None:
        """Call ``fn(record)`` after every ``every``-th epoch (and after the last one)."""
        self.loop.attach(fn, every)

    # -- the loop --------------------------------------------------------------------------------
    def epochs(self) -> Iterator[EpochRecord]:
        """Train epoch by epoch until a stop criterion holds (see :attr:`stop_reason`)."""
        while (reason := self._stop_reason()) is None:
            record = self.run_epoch()
            self.loop.notify(record, record.epoch, final=self._stop_reason() is not None)
            yield record
        self.stop_reason = reason

    def _stop_reason(self) -> str | None:
        cfg = self.config
        if self.epoch >= cfg.max_epochs:
            return "max_epochs"
        budget = cfg.budget_s
        if budget is not None and self.elapsed_s >= budget:
            return "time_budget"
        patience = cfg.early_stopping_patience
        if patience and self.epoch > 0 and self.epoch - self.best_epoch >= patience:
            return "early_stopping"
        return None

    def run_epoch(self) -> EpochRecord:
        """One pass over the training frames, then validation."""
        cfg, start = self.config, time.perf_counter()
        self.potential.train()
        total = torch.zeros((), dtype=torch.float64, device=self.train_set.positions.device)
        rank, world = self.dist.rank, self.dist.world_size
        for batch in shuffled_batches(len(self.train_set), cfg.batch_size, self.generator):
            # Every rank draws the same batches and takes its slice of each (DDP's sharding);
            # with even batches the averaged gradient is the single-process one.
            index = batch[rank::world]
            lr = self.schedule.on_step(self.step)  # counts steps: no clock
            if len(index) == 0:  # a last batch smaller than the world: this rank adds nothing
                self.loop.apply(lr, grads=[None] * len(self.params))
                self.step += 1
                continue
            pos, energies, forces = self.train_set.batch(index)
            loss, _ = energy_force_loss(
                self.potential, pos, self.train_set.species, energies, forces, cfg.weights
            )
            self.loop.apply(lr, loss=loss)
            self.step += 1
            total += loss.detach().double() * len(index)
        train_loss = self.dist.reduce(float(total)) / len(self.train_set)
        if not math.isfinite(train_loss):
            raise CrmseError(
                f"training diverged at epoch {self.epoch + 1} (loss {train_loss}); lower lr or set grad_clip"
            )
        with self.validated_weights():
            errors = self.validate()
            improved = errors.loss < self.best_loss
            if improved:
                self.best_loss, self.best_epoch = errors.loss, self.epoch + 1
                self.best_weights = {k: v.detach().clone() for k, v in self.potential.state_dict().items()}
        self.schedule.on_epoch(errors.loss)
        self.epoch += 1
        # One clock for all ranks, so time budgets stop them at the same epoch.
        self.elapsed_s = self.dist.reduce(self.elapsed_s + time.perf_counter() - start, "max")
        self.last = EpochRecord(
            epoch=self.epoch,
            step=self.step,
            train_loss=train_loss,
            val_loss=errors.loss,
            val_energy_mae=errors.energy_mae,
            val_force_mae=errors.force_mae,
            lr=self.loop.lr,
            elapsed_s=self.elapsed_s,
            improved=improved,
        )
        return self.last

    def validate(self) -> ErrorMetrics:
        """Errors of the current weights on the validation frames."""
        v = self.val_set
        return evaluate_errors(
            self.potential, v.positions, v.species, v.energies, v.forces, self.config.weights
        )

    def validated_weights(self) -> AbstractContextManager[None]:
        """Context in which the model holds the weights that are validated and saved (the EMA's)."""
        return averaged(self.ema)

    def best_potential(self) -> Potential:
        """A copy of the potential with the best validated weights, in eval mode."""
        best = copy.deepcopy(self.potential)
        if self.best_weights is not None:
            best.load_state_dict(self.best_weights)
        elif self.ema is not None:
            with self.validated_weights():
                best.load_state_dict(self.potential.state_dict())
        return best.eval()

    def test(self, frames: FrameSet) -> ErrorMetrics:
        """Errors of the best potential on ``frames`` (e.g. the split's test part)."""
        return evaluate_errors(
            self.best_potential(),
            frames.positions,
            frames.species,
            frames.energies,
            frames.forces,
            self.config.weights,
        )

    # -- state -----------------------------------------------------------------------------------
    def state_extra(self) -> CheckpointExtra:
        """Everything a resume needs, as checkpoint ``extra`` (tensors and plain types in ``state``)."""
        return CheckpointExtra(
            stage=CHECKPOINT_STAGE,
            dataset=_text(self.meta.get("dataset")),
            split=_text(self.meta.get("split")),
            config=to_dict(self.config),
            species=tuple(int(z) for z in self.train_set.species.tolist()),
            train_indices=np.asarray(self.train_set.rows, dtype=np.int64),
            val_indices=np.asarray(self.val_set.rows, dtype=np.int64),
            state={
                "epoch": self.epoch,
                "step": self.step,
                "elapsed_s": self.elapsed_s,
                "best_loss": self.best_loss,
                "best_epoch": self.best_epoch,
                "best_weights": self.best_weights,
                "val": _record_dict(self.last),
                **self.loop.state_dict(),  # "optimizer", "ema"
                "schedule": self.schedule.state_dict(),
                "generator": self.generator.get_state(),
                # With an EMA the checkpoint's potential holds the averaged weights; the live
                # (optimised) ones are kept here so that a resume continues exactly.
                "train_weights": _cloned(self.potential.state_dict()) if self.ema is not None else None,
            },
        )

    def load_state_dict(self, extra: Mapping[str, Any]) -> None:
        """Restore the state saved by :meth:`state_extra` (the potential's weights included)."""
        if extra.get("train_weights") is not None:
            self.potential.load_state_dict(extra["train_weights"])
        self.loop.load_state_dict(dict(extra))
        self.schedule.load_state_dict(extra["schedule"])
        self.generator.set_state(extra["generator"])
        self.epoch, self.step = int(extra["epoch"]), int(extra["step"])
        self.elapsed_s = float(extra["elapsed_s"])
        self.best_loss, self.best_epoch = float(extra["best_loss"]), int(extra["best_epoch"])
        best = extra.get("best_weights")
        self.best_weights = {k: v.to(self.config.device) for k, v in best.items()} if best else None
        val = extra.get("val")
        self.last = EpochRecord(**val) if val else None
        self.potential.train()

    def save_last(self, path: Any) -> str:
        """Write the resumable ``last`` checkpoint atomically; return its sha256."""
        extra = self.state_extra()
        with self.validated_weights():
            return save_checkpoint(path, self.potential, extra=extra)

    def save_best(self, path: Any) -> str:
        """Write the ``best`` checkpoint (best validated weights, no optimiser state); return its sha256."""
        extra = replace(self.state_extra(), state={"epoch": self.best_epoch, "val_loss": self.best_loss})
        return save_checkpoint(path, self.best_potential(), extra=extra)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _cloned(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in state.items()}


def _record_dict(record: EpochRecord | None) -> dict[str, Any] | None:
    return None if record is None else dict(record.__dict__)
