"""Reproducible parents (issue 29): epoch-counted schedule, n_val validation, bit-identical weights.

Tiny synthetic data (ethanol-shaped noisy frames), a tiny PaiNN, one torch thread: the same seed,
data, code and thread count must give the same weights to the bit, resumed or not, whatever the
clock says; a wall-clock budget only stops a run and the run says so.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import GEOMETRY_A, SPECIES, cli_main, make_workspace

from crmse_cli.config import from_dict, to_dict
from crmse_cli.data.dataset import Dataset
from crmse_cli.errors import CrmseError
from crmse_cli.model import ModelConfig
from crmse_cli.train import pretrain as pretrain_module
from crmse_cli.train.data import rows_digest, select_frames
from crmse_cli.train.pretrain import PretrainConfig, PretrainTrainer
from crmse_cli.workspace import Workspace

CFG = PretrainConfig(
    model=ModelConfig(features=8, layers=1, n_rbf=4),
    n_train=12,
    n_val=6,
    batch_size=5,
    lr=3e-3,
    max_epochs=4,
    ema_decay=0.9,
)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def data() -> Dataset:
    rng = np.random.default_rng(1)
    n = 30
    return Dataset(
        name="ethanol",
        species=SPECIES,
        positions=GEOMETRY_A + 0.05 * rng.normal(size=(n, 9, 3)),
        energies=-97000.0 + rng.normal(size=n),
        forces=10.0 * rng.normal(size=(n, 9, 3)),
        frame_ids=np.arange(n),
        splits={"01": {"train": np.arange(24), "test": np.arange(24, 30)}},
    )


def trained(cfg: PretrainConfig, data: Dataset) -> PretrainTrainer:
    trainer = PretrainTrainer.create(cfg, data)
    list(trainer.epochs())
    return trainer


def assert_same_weights(a: PretrainTrainer, b: PretrainTrainer) -> None:
    sa, sb = a.potential.state_dict(), b.potential.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    best_a, best_b = a.best_potential().state_dict(), b.best_potential().state_dict()
    for k in best_a:
        assert torch.equal(best_a[k], best_b[k]), k


def test_same_seed_gives_bit_identical_weights(data: Dataset) -> None:
    a, b = trained(CFG, data), trained(CFG, data)
    assert a.stop_reason == b.stop_reason == "max_epochs"
    assert_same_weights(a, b)
    c = trained(dataclasses.replace(CFG, seed=1), data)
    assert any(not torch.equal(v, c.potential.state_dict()[k]) for k, v in a.potential.state_dict().items())


def test_a_resumed_run_equals_the_uninterrupted_one(data: Dataset, tmp_path: Path) -> None:
    straight = trained(CFG, data)
    cut = PretrainTrainer.create(CFG, data)
    cut.attach(lambda r: cut.save_last(tmp_path / "last.pt"))
    for record in cut.epochs():
        if record.epoch == 2:
            break  # as Ctrl-C after epoch 2
    resumed = PretrainTrainer.from_checkpoint(tmp_path / "last.pt", data)
    assert resumed.epoch == 2 and resumed.config == CFG
    list(resumed.epochs())
    assert_same_weights(straight, resumed)
    assert np.array_equal(resumed.val_set.rows, straight.val_set.rows)


def jumping_clock(monkeypatch: pytest.MonkeyPatch, step_s: float, *, every_clock: bool = False) -> None:
    """Every clock read jumps ``step_s`` seconds ahead (a slow, loaded machine): an epoch reads
    ``perf_counter`` at its start and end, so it lasts ``step_s``."""
    ticks = itertools.count()
    names = ("perf_counter", "monotonic", "time") if every_clock else ("perf_counter",)
    for name in names:
        monkeypatch.setattr(pretrain_module.time, name, lambda: step_s * next(ticks))


def test_the_schedule_reads_no_clock(data: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    calm = trained(CFG, data)
    jumping_clock(monkeypatch, 37.0, every_clock=True)
    loaded = trained(CFG, data)
    assert_same_weights(calm, loaded)
    # A budget the run does not reach (4 epochs of 37 s < 5 min) leaves it as it was: the clock
    # stops runs, never moves the rate (the cosine over max(epochs, time) of before did).
    budgeted = trained(dataclasses.replace(CFG, max_minutes=5.0), data)
    assert budgeted.stop_reason == "max_epochs"
    assert_same_weights(calm, budgeted)


def test_a_time_budget_stops_a_run_at_an_epoch_of_the_same_trajectory(
    data: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    jumping_clock(monkeypatch, 60.0)  # 60 s per epoch: a 2-minute budget is spent after epoch 2
    cut = trained(dataclasses.replace(CFG, max_minutes=2.0), data)
    assert (cut.stop_reason, cut.epoch) == ("time_budget", 2)
    two = trained(dataclasses.replace(CFG, max_epochs=2), data)
    # Its weights are those of epoch 2 of the 4-epoch schedule, not of a 2-epoch one.
    four_cut = PretrainTrainer.create(CFG, data)
    for record in four_cut.epochs():
        if record.epoch == 2:
            break
    assert_same_weights(cut, four_cut)
    assert cut.last is not None and two.last is not None and cut.last.lr > two.last.lr


def test_validation_frames_are_others_of_the_training_part(data: Dataset) -> None:
    trainer = PretrainTrainer.create(CFG, data)
    train, val = set(trainer.train_set.rows), set(trainer.val_set.rows)
    assert (len(train), len(val)) == (12, 6) and not train & val
    assert train | val <= set(data.split("01")[0])
    # A seed keeps its validation frames whatever n_train, and a smaller draw trains on a subset.
    smaller_t, smaller_v = select_frames(data.split("01")[0], 8, 6, seed=0)
    assert set(smaller_v) == val and set(smaller_t) <= train
    with pytest.raises(CrmseError, match=r"n_train 20 \+ n_val 6 = 26 frames.*holds 24"):
        PretrainTrainer.create(dataclasses.replace(CFG, n_train=20), data)


def test_an_old_config_with_val_fraction_still_reads_and_draws_the_old_frames() -> None:
    old = to_dict(PretrainConfig())
    old.pop("n_val")
    old.update(val_fraction=0.05, n_train=1000, max_minutes=15.0, early_stopping_patience=100)
    cfg = from_dict(PretrainConfig, old, where="an old run")
    assert (cfg.val_fraction, cfg.n_val, cfg.max_minutes) == (0.05, None, 15.0)
    assert from_dict(PretrainConfig, to_dict(cfg)) == cfg  # recorded as used, and read back
    rows = np.arange(100, 1100)
    train, val = select_frames(rows, cfg.n_train, cfg.n_val, cfg.seed, val_fraction=cfg.val_fraction)
    chosen = np.random.default_rng(cfg.seed).permutation(rows)[:1000]  # the formula before 2026-12-07
    assert np.array_equal(val, np.sort(chosen[:50])) and np.array_equal(train, np.sort(chosen[50:]))
    with pytest.raises(CrmseError, match="not both"):
        PretrainConfig(n_val=20, val_fraction=0.1)


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.delenv("CRMSE_DB_URL", raising=False)
    monkeypatch.setenv("CRMSE_NO_PROGRESS", "1")
    return make_workspace(tmp_path / "home")


def test_the_run_records_its_validation_frames_and_a_time_budget_cut(
    ws: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from crmse_cli.registry.store import Registry
    from crmse_cli.stages.pretrain import pretrain

    full = pretrain(ws, dataset="ethanol", config=CFG, name="full", progress=False)
    jumping_clock(monkeypatch, 60.0)
    budgeted = dataclasses.replace(CFG, max_minutes=2.0)
    with caplog.at_level("WARNING"):
        cut = pretrain(ws, dataset="ethanol", config=budgeted, name="cut", progress=False)
    assert cut.stop_reason == "time_budget"
    assert "time budget (max_minutes 2) stopped it after epoch 2 of max_epochs 4" in caplog.text
    reg = Registry.open(ws)
    run = reg.get_run(full.run_id)
    got = (run.config["n_train_frames"], run.config["n_val_frames"], run.config["max_minutes"])
    assert got == (12, 6, None)
    trainer = PretrainTrainer.create(CFG, Dataset.load(ws.datasets_dir / "ethanol.npz"))
    assert run.config["val_frames_sha256"] == rows_digest(trainer.val_set.rows)
    assert reg.final_metrics(full.run_id)["stopped_by_time_budget"].value == 0.0
    assert reg.final_metrics(cut.run_id)["stopped_by_time_budget"].value == 1.0
    monkeypatch.setenv("CRMSE_HOME", str(ws.home))
    code, out, err = cli_main(monkeypatch, capsys, "show", "cut")
    assert code == 0, err
    assert "time budget" in out and "max_minutes 2" in out
    assert "validates on 6 others" in out
    code, out, err = cli_main(monkeypatch, capsys, "--json", "show", "full")
    assert json.loads(out)["metrics"]["stopped_by_time_budget"]["value"] == 0.0
