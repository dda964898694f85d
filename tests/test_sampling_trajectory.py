"""Trajectory recorder: the npz artifact and its extended-XYZ export read back by ASE."""

from __future__ import annotations

import json
import math
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch

from crmse_cli import units
from crmse_cli.errors import CrmseError
from crmse_cli.sampling import (
    ULA,
    LangevinBAOAB,
    StabilityMonitor,
    TrajectoryRecorder,
    export_extxyz,
    load_trajectory,
)

SPECIES = np.array([8, 1, 1])
WATER = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])


def water_force_fn(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Harmonic wells around a water geometry (kcal/mol)."""
    d = x - torch.as_tensor(WATER, dtype=x.dtype)
    return 50.0 * d.pow(2).sum(dim=(1, 2)) + 3.0, -100.0 * d


def test_recorder_saves_npz_and_exports_extxyz(tmp_path: Path) -> None:
    monitor = StabilityMonitor.from_reference(SPECIES, WATER[None] + 0.01 * np.arange(3)[:, None, None])
    recorder = TrajectoryRecorder(SPECIES, monitor=monitor)
    md = LangevinBAOAB(water_force_fn, [16.0, 1.0, 1.0], 300.0, 0.5, 0.01, torch.Generator().manual_seed(0))
    md.attach(monitor, every=5)
    md.attach(recorder, every=5)
    start = torch.tensor(WATER, dtype=torch.float64).expand(4, 3, 3).clone()
    md.run(md.init_state(start), 20)
    assert recorder.n_frames == 5

    path = recorder.save(
        tmp_path / "run" / "trajectory.npz", meta={"sampler": "langevin", "temperature_K": 300.0}
    )
    assert not list(path.parent.glob(".*tmp"))  # the atomic write left no temporary file
    traj = load_trajectory(path)
    assert traj.positions.shape == (5, 4, 3, 3) and traj.positions.dtype == np.float32
    assert traj.energies.shape == (5, 4) and traj.steps.tolist() == [0, 5, 10, 15, 20]
    assert np.allclose(traj.time_fs, [0.0, 2.5, 5.0, 7.5, 10.0])
    assert np.array_equal(traj.species, SPECIES)
    assert traj.meta["sampler"] == "langevin" and traj.meta["units"]["energy"] == "kcal/mol"
    assert traj.meta["stability"]["n_replicas"] == 4
    assert traj.stability["stability_left"].shape == (4,)
    assert np.allclose(traj.energies[0], 3.0)  # all replicas start in the well's minimum

    out = tmp_path / "traj.xyz"
    assert export_extxyz(path, out, replicas=[1, 3]) == 10
    frames = ase.io.read(out, index=":")
    assert len(frames) == 10
    second = frames[6]  # replica 3, recorded frame 1
    assert second.info["replica"] == 3 and second.info["step"] == 5
    assert second.info["time_fs"] == pytest.approx(2.5)
    assert list(second.numbers) == list(SPECIES)
    assert np.allclose(second.positions, traj.positions[1, 3], atol=1e-6)
    energy_ev = traj.energies[1, 3] * units.EV_PER_KCAL_PER_MOL
    assert second.get_potential_energy() == pytest.approx(energy_ev, rel=1e-9)
    with pytest.raises(CrmseError):
        export_extxyz(path, out, replicas=[4])


def test_recorder_follows_ula_and_refuses_an_empty_save(tmp_path: Path) -> None:
    recorder = TrajectoryRecorder(SPECIES)
    with pytest.raises(CrmseError):
        recorder.save(tmp_path / "empty.npz")
    sampler = ULA(water_force_fn, 300.0, 1e-3, torch.Generator().manual_seed(0))
    sampler.attach(recorder, every=2)
    sampler.run(sampler.init_state(torch.tensor(WATER, dtype=torch.float32)[None].repeat(2, 1, 1)), 6)
    traj = load_trajectory(recorder.save(tmp_path / "ula.npz"))
    assert traj.steps.tolist() == [0, 2, 4, 6] and all(math.isnan(t) for t in traj.time_fs)
    assert "stability_left" not in traj.stability
    meta = json.loads(json.dumps(traj.meta))
    assert meta["format_version"] == 1
