"""Typed run records: CheckpointExtra (a checkpoint's ``extra``), SampleMeta (a samples ``meta``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from crmse_cli.errors import CrmseError
from crmse_cli.model.checkpoint_extra import EXTRA_VERSION, VERSION_KEY, CheckpointExtra
from crmse_cli.sampling.sample_meta import SampleMeta


def test_checkpoint_extra_round_trips_through_its_flat_dict() -> None:
    extra = CheckpointExtra(
        stage="pretrain",
        dataset="ethanol",
        split="01",
        species=(6, 6, 8, 1),
        config={"n_train": 200},
        train_indices=np.array([3, 1, 2]),
        val_indices=np.array([7]),
        state={"epoch": 4, "optimizer": {"state": {}}},
    )
    flat = extra.to_dict()
    assert flat[VERSION_KEY] == EXTRA_VERSION and flat["epoch"] == 4 and flat["species"] == [6, 6, 8, 1]
    assert isinstance(flat["train_indices"], torch.Tensor)  # loads with weights_only=True
    back = CheckpointExtra.from_dict(flat, where="x.pt")
    assert (back.stage, back.dataset, back.split, back.species) == ("pretrain", "ethanol", "01", (6, 6, 8, 1))
    assert back.train_indices is not None and back.train_indices.tolist() == [3, 1, 2]
    assert dict(back.state) == {"epoch": 4, "optimizer": {"state": {}}}
    assert back.imported_from is None and back.budget_choice is None


def test_an_unversioned_extra_reads_with_its_keys_and_a_newer_one_is_refused() -> None:
    old = {"dataset": "ethanol", "split": "01", "train_indices": [0, 1], "epoch": 2}  # before the version
    extra = CheckpointExtra.from_dict(old, where="old.pt")
    assert extra.version == 0 and extra.dataset == "ethanol" and dict(extra.state) == {"epoch": 2}
    with pytest.raises(CrmseError, match=r"new\.pt has checkpoint extra version 99, newer"):
        CheckpointExtra.from_dict({VERSION_KEY: 99}, where="new.pt")
    with pytest.raises(CrmseError, match=r"bad\.pt .*config is list"):
        CheckpointExtra.from_dict({"config": [1]}, where="bad.pt")


def test_save_checkpoint_writes_the_record(tmp_path: Path) -> None:
    from crmse_cli.model.build import build_potential
    from crmse_cli.model.checkpoint import load_checkpoint, save_checkpoint
    from crmse_cli.model.config import ModelConfig

    pot = build_potential(ModelConfig(features=8, layers=1, n_rbf=4), [1, 6, 8])
    path = tmp_path / "c.pt"
    save_checkpoint(path, pot, extra=CheckpointExtra(dataset="d", species=(6, 1), state={"epoch": 3}))
    _, payload = load_checkpoint(path)
    extra = CheckpointExtra.of(payload, where=str(path))
    assert (extra.dataset, extra.species, extra.version, dict(extra.state)) == (
        "d",
        (6, 1),
        EXTRA_VERSION,
        {"epoch": 3},
    )


def test_sample_meta_round_trips_and_requires_its_temperature() -> None:
    meta = SampleMeta(
        temperature_K=450.0, integrator="langevin", dataset="ethanol", split="01", checkpoint="c.pt"
    )
    assert SampleMeta.from_dict(meta.to_dict(), where="s.npz") == meta
    with pytest.raises(CrmseError, match=r"^samples file s\.npz has no 'temperature_K'"):
        SampleMeta.from_dict({"integrator": "langevin"}, where="samples file s.npz")
    with pytest.raises(CrmseError, match=r"s\.npz records 'temperature_K' as 'hot', not a number"):
        SampleMeta.from_dict({"temperature_K": "hot"}, where="s.npz")


def test_diagnose_refuses_samples_without_their_temperature(tmp_path: Path) -> None:
    """diagnose read the samples' temperature only when present, then fell back to 500 K."""
    from crmse_cli.analysis.diagnosis import collapsed_frames
    from crmse_cli.sampling.monitor import StabilityMonitor
    from crmse_cli.sampling.trajectory import TrajectoryRecorder

    species = np.array([6, 1, 1, 1, 1])
    base = np.array([[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63],
                     [0.63, -0.63, -0.63]], dtype=float)  # fmt: skip
    monitor = StabilityMonitor.from_reference(species, base[None] + np.zeros((5, 1, 1)))

    class State:
        positions = torch.as_tensor(np.stack([base]))
        energy = torch.zeros(1)
        step, time_fs = 0, 0.0

    rec = TrajectoryRecorder(species)
    rec(State())
    path = rec.save(tmp_path / "s.npz", meta={"integrator": "langevin"})
    with pytest.raises(CrmseError, match=rf"samples file {path} has no 'temperature_K'"):
        collapsed_frames([path], monitor, limit=10, seed=0)
