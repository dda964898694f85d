"""MSE pretraining: frame selection, the loop, schedules, EMA, checkpoints and exact resume."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from crmse_cli.config import load_config
from crmse_cli.data.dataset import Dataset
from crmse_cli.errors import CrmseError
from crmse_cli.model import ModelConfig, load_checkpoint
from crmse_cli.train.data import FrameSet, select_frames, shuffled_batches
from crmse_cli.train.optim import LRSchedule, WeightAverage, averaged
from crmse_cli.train.pretrain import PretrainConfig, PretrainTrainer

TINY = ModelConfig(features=32, layers=2, n_rbf=16)  # learns forces within a few epochs


def ethanol_dataset(path: Path, n_train: int = 120, n_test: int = 30) -> Dataset:
    """A dataset of the first frames of an rMD17 split file, with a train/test split "01"."""
    with np.load(path) as z:
        n = n_train + n_test
        return Dataset(
            name="ethanol",
            species=z["nuclear_charges"].astype(np.int64),
            positions=z["coords"][:n],
            energies=z["energies"][:n],
            forces=z["forces"][:n],
            frame_ids=np.arange(n),
            splits={"01": {"train": np.arange(n_train), "test": np.arange(n_train, n)}},
        )


def tiny_config(**changes: object) -> PretrainConfig:
    base = PretrainConfig(
        model=TINY, n_train=60, val_fraction=0.2, batch_size=16, lr=3e-3, max_epochs=4, max_minutes=None
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def ethanol(ethanol_npz: Path) -> Dataset:
    return ethanol_dataset(ethanol_npz)


# -- frame selection and batching ----------------------------------------------------------------
def test_select_frames_is_reproducible_and_nested() -> None:
    rows = np.arange(100, 1100)
    train, val = select_frames(rows, 1000, None, seed=3, val_fraction=0.05)  # the old rule
    assert (len(train), len(val)) == (950, 50)  # rMD17's usual split
    assert not set(train) & set(val) and set(train) | set(val) == set(rows)
    again = select_frames(rows, 1000, None, seed=3, val_fraction=0.05)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    other = select_frames(rows, 1000, None, seed=4, val_fraction=0.05)
    assert not np.array_equal(val, other[1])
    small_t, small_v = select_frames(rows, 200, None, seed=3, val_fraction=0.05)
    assert (len(small_t), len(small_v)) == (190, 10)
    assert set(small_t) | set(small_v) <= set(rows)
    # A smaller draw is a subset of a larger one with the same seed.
    big_t, big_v = select_frames(rows, 400, None, seed=3, val_fraction=0.05)
    assert set(small_t) | set(small_v) <= set(big_t) | set(big_v)


def test_select_frames_refuses_impossible_requests() -> None:
    with pytest.raises(CrmseError, match="n_train"):
        select_frames(np.arange(10), 11, None, seed=0, val_fraction=0.1)
    with pytest.raises(CrmseError, match="val_fraction"):
        select_frames(np.arange(10), 10, None, seed=0, val_fraction=0.9)
    assert len(select_frames(np.arange(10), None, None, seed=0, val_fraction=0.1)[1]) == 1
    with pytest.raises(CrmseError, match=r"n_train 8 \+ n_val 3 = 11 frames.*holds 10.*at most 7"):
        select_frames(np.arange(10), 8, 3, seed=0)
    train, val = select_frames(np.arange(10), None, 3, seed=0)  # None: all but the validation frames
    assert (len(train), len(val)) == (7, 3)


def test_shuffled_batches_cover_every_frame_once() -> None:
    g = torch.Generator().manual_seed(0)
    batches = list(shuffled_batches(10, 4, g))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))


# -- schedule and EMA --------------------------------------------------------------------------
def test_cosine_schedule_runs_from_lr_to_lr_min() -> None:
    cfg = PretrainConfig(lr=1e-3, lr_min=1e-5, max_epochs=10, max_minutes=None)
    s = LRSchedule(cfg, steps_per_epoch=10)
    assert s.on_step(0) == pytest.approx(1e-3)
    assert s.on_step(50) == pytest.approx(0.5 * (1e-3 + 1e-5))
    assert s.on_step(100) == pytest.approx(1e-5)
    timed = LRSchedule(dataclasses.replace(cfg, max_minutes=1.0), steps_per_epoch=10)
    assert timed.on_step(50) == s.on_step(50)  # a time budget stops a run; it never moves the rate


def test_plateau_schedule_cuts_after_patience() -> None:
    cfg = PretrainConfig(schedule="plateau", lr=1e-3, plateau_factor=0.5, plateau_patience=2)
    s = LRSchedule(cfg, steps_per_epoch=1)
    for loss in (1.0, 0.5, 0.5, 0.5):
        s.on_epoch(loss)
    assert s.on_step(4) == pytest.approx(1e-3)
    s.on_epoch(0.5)  # third epoch without improvement
    assert s.on_step(5) == pytest.approx(5e-4)


def test_weight_average_swaps_exactly() -> None:
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    ema = WeightAverage([p], decay=0.9)
    with torch.no_grad():
        p.add_(1.0)
    ema.update()  # first update: warm-up decay 1/10
    expected = torch.tensor([1.0, 2.0]) * 0.1 + torch.tensor([2.0, 3.0]) * 0.9
    with averaged(ema):
        assert torch.allclose(p.detach(), expected)
    assert torch.equal(p.detach(), torch.tensor([2.0, 3.0]))


def test_config_validation_and_toml(tmp_path: Path) -> None:
    with pytest.raises(CrmseError, match="schedule"):
        PretrainConfig(schedule="linear")
    with pytest.raises(CrmseError, match="val_fraction"):
        PretrainConfig(val_fraction=0.0)
    f = tmp_path / "c.toml"
    f.write_text('n_train = 200\nschedule = "plateau"\n[model]\nfeatures = 16\n')
    cfg = load_config(PretrainConfig, f, max_epochs=3)
    assert (cfg.n_train, cfg.schedule, cfg.model.features, cfg.max_epochs) == (200, "plateau", 16, 3)
    with pytest.raises(CrmseError, match="unknown key"):
        load_config(PretrainConfig, f, epochs=3)


# -- the loop ------------------------------------------------------------------------------------
def test_training_reduces_the_validation_loss(ethanol: Dataset) -> None:
    trainer = PretrainTrainer.create(tiny_config(max_epochs=5), ethanol)
    assert (len(trainer.train_set), len(trainer.val_set)) == (48, 12)
    assert not set(trainer.train_set.rows) & set(trainer.val_set.rows)
    assert set(trainer.train_set.rows) <= set(ethanol.split("01")[0])
    first_val = trainer.validate().loss
    records = list(trainer.epochs())
    assert [r.epoch for r in records] == [1, 2, 3, 4, 5] and trainer.stop_reason == "max_epochs"
    assert records[-1].val_loss < 0.6 * first_val
    assert all(math.isfinite(r.train_loss) and r.lr > 0 for r in records)
    assert trainer.best_loss == min(r.val_loss for r in records)


def test_seeded_runs_are_identical(ethanol: Dataset) -> None:
    a = PretrainTrainer.create(tiny_config(max_epochs=2), ethanol)
    b = PretrainTrainer.create(tiny_config(max_epochs=2), ethanol)
    ra, rb = list(a.epochs()), list(b.epochs())
    assert [r.val_loss for r in ra] == [r.val_loss for r in rb]
    c = PretrainTrainer.create(tiny_config(max_epochs=2, seed=1), ethanol)
    assert not np.array_equal(c.val_set.rows, a.val_set.rows)


def test_stop_reasons(ethanol: Dataset) -> None:
    timed = PretrainTrainer.create(tiny_config(max_epochs=50, max_minutes=1e-9), ethanol)
    assert len(list(timed.epochs())) == 1 and timed.stop_reason == "time_budget"
    patient = PretrainTrainer.create(tiny_config(max_epochs=50, early_stopping_patience=2), ethanol)
    patient.epoch, patient.best_epoch = 7, 5
    assert list(patient.epochs()) == [] and patient.stop_reason == "early_stopping"


def test_observers_are_called(ethanol: Dataset) -> None:
    trainer = PretrainTrainer.create(tiny_config(max_epochs=3), ethanol)
    seen: list[int] = []
    trainer.attach(lambda r: seen.append(r.epoch), every=2)
    list(trainer.epochs())
    assert seen == [2, 3]  # every second epoch, and the last


# -- checkpoints and resume ----------------------------------------------------------------------
def test_checkpoint_contents(ethanol: Dataset, tmp_path: Path) -> None:
    trainer = PretrainTrainer.create(tiny_config(max_epochs=2), ethanol)
    list(trainer.epochs())
    trainer.save_last(tmp_path / "last.pt")
    trainer.save_best(tmp_path / "best.pt")
    payload = torch.load(tmp_path / "last.pt", weights_only=True)  # plain types and tensors only
    extra = payload["extra"]
    for key in ("optimizer", "schedule", "generator", "epoch", "step", "config", "best_weights", "elapsed_s"):
        assert key in extra
    assert (extra["dataset"], extra["split"], extra["epoch"]) == ("ethanol", "01", 2)
    assert extra["species"] == ethanol.species.tolist()
    assert np.array_equal(np.asarray(extra["train_indices"]), trainer.train_set.rows)
    assert np.array_equal(np.asarray(extra["val_indices"]), trainer.val_set.rows)
    assert extra["config"]["model"]["features"] == TINY.features
    best, best_payload = load_checkpoint(tmp_path / "best.pt")
    assert best_payload["extra"]["epoch"] == trainer.best_epoch
    assert "optimizer" not in best_payload["extra"]
    for k, v in trainer.best_weights.items():  # type: ignore[union-attr]
        assert torch.equal(best.state_dict()[k], v)


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_resume_continues_exactly(ethanol: Dataset, tmp_path: Path, ema_decay: float) -> None:
    cfg = tiny_config(max_epochs=4, ema_decay=ema_decay)
    straight = PretrainTrainer.create(cfg, ethanol)
    straight_records = list(straight.epochs())

    interrupted = PretrainTrainer.create(cfg, ethanol)
    interrupted.attach(lambda r: interrupted.save_last(tmp_path / "last.pt"))
    for record in interrupted.epochs():
        if record.epoch == 2:
            break  # as Ctrl-C would; the observer saved epoch 2
    resumed = PretrainTrainer.from_checkpoint(tmp_path / "last.pt", ethanol)
    assert resumed.epoch == 2
    records = list(resumed.epochs())
    assert [r.epoch for r in records] == [3, 4]
    assert [r.val_loss for r in records] == [r.val_loss for r in straight_records[2:]]
    for k, v in straight.potential.state_dict().items():
        assert torch.equal(resumed.potential.state_dict()[k], v), k
    assert resumed.best_epoch == straight.best_epoch


def test_resume_refuses_model_changes(ethanol: Dataset, tmp_path: Path) -> None:
    trainer = PretrainTrainer.create(tiny_config(max_epochs=1), ethanol)
    list(trainer.epochs())
    trainer.save_last(tmp_path / "last.pt")
    with pytest.raises(CrmseError, match="lr"):
        PretrainTrainer.from_checkpoint(tmp_path / "last.pt", ethanol, overrides={"lr": 1.0})
    other = dataclasses.replace(trainer.config, model=dataclasses.replace(TINY, features=4))
    with pytest.raises(CrmseError, match="model"):
        PretrainTrainer.from_checkpoint(tmp_path / "last.pt", ethanol, config=other)
    longer = dataclasses.replace(trainer.config, max_epochs=9)
    assert (
        PretrainTrainer.from_checkpoint(tmp_path / "last.pt", ethanol, config=longer).config.max_epochs == 9
    )
    trainer.save_best(tmp_path / "best.pt")
    with pytest.raises(CrmseError, match="resumable"):
        PretrainTrainer.from_checkpoint(tmp_path / "best.pt", ethanol)


def test_test_metrics_use_the_best_averaged_weights(ethanol: Dataset) -> None:
    trainer = PretrainTrainer.create(tiny_config(max_epochs=2, ema_decay=0.5), ethanol)
    list(trainer.epochs())
    best = trainer.best_potential()
    assert trainer.best_weights is not None
    for k, v in trainer.best_weights.items():
        assert torch.equal(best.state_dict()[k], v)
    # The saved weights are the average, not the live optimised ones.
    live = trainer.potential.state_dict()
    assert any(not torch.equal(best.state_dict()[k], live[k]) for k in live)
    test = FrameSet.from_dataset(ethanol, ethanol.split("01")[1])
    errors = trainer.test(test)
    assert errors.n_frames == 30 and errors.energy_mae > 0 and errors.force_rmse >= errors.force_mae
    if trainer.best_epoch == trainer.epoch:  # the validated loss was the average's
        with averaged(trainer.ema):
            assert trainer.validate().loss == pytest.approx(trainer.best_loss)
