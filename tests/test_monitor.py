"""Bond graph and stability monitor on real ethanol frames (rMD17, split 01 training frames)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from crmse_cli.data.graph import bond_graph, bond_lengths, min_pair_distances
from crmse_cli.errors import CrmseError
from crmse_cli.sampling import LangevinBAOAB, StabilityMonitor, masses_from_species


def load_ethanol(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as z:
        return z["nuclear_charges"].astype(np.int64), z["coords"].astype(np.float64)


def test_bond_graph_of_ethanol(ethanol_npz: Path) -> None:
    species, coords = load_ethanol(ethanol_npz)
    bonds = bond_graph(species, coords[0])
    assert len(bonds) == 8
    assert np.array_equal(bond_graph(species, coords), bonds)  # mean over frames agrees
    elements = sorted("".join(sorted({6: "C", 8: "O", 1: "H"}[int(species[k])] for k in b)) for b in bonds)
    assert elements == ["CC", "CH", "CH", "CH", "CH", "CH", "CO", "HO"]
    lengths = bond_lengths(coords, bonds).mean(axis=0)
    assert np.all((lengths > 0.9) & (lengths < 1.6))
    pmin = min_pair_distances(coords)
    assert np.all(np.isinf(np.diag(pmin))) and np.allclose(pmin, pmin.T)


def _stretched(frame: np.ndarray, i: int, j: int, length: float) -> np.ndarray:
    """Move atom j along the i->j bond so that the bond is ``length`` Å long."""
    out = frame.copy()
    u = (frame[j] - frame[i]) / np.linalg.norm(frame[j] - frame[i])
    out[j] = frame[i] + length * u
    return out


def _pinched(frame: np.ndarray, c: int, h1: int, h2: int, hh: float) -> np.ndarray:
    """Rotate two hydrogens of carbon c towards each other, keeping both C-H lengths, until H-H = hh."""
    out = frame.copy()
    a, b = frame[h1] - frame[c], frame[h2] - frame[c]
    u = (a + b) / np.linalg.norm(a + b)
    w = (a - b) / np.linalg.norm(a - b)
    for h, vec, sign in ((h1, a, 1.0), (h2, b, -1.0)):
        r = np.linalg.norm(vec)
        theta = math.asin(hh / (2 * r))
        out[h] = frame[c] + r * (math.cos(theta) * u + sign * math.sin(theta) * w)
    return out


def test_monitor_flags_stretched_bond_and_collapsed_pair(ethanol_npz: Path) -> None:
    species, coords = load_ethanol(ethanol_npz)
    monitor = StabilityMonitor.from_reference(species, coords)
    bonds = monitor.bonds.numpy()
    ref = monitor.bond_ref_mean.numpy()
    frame = coords[0]
    # A methyl C-H bond stretched to 0.6 Å above its reference mean.
    k = next(n for n, (i, j) in enumerate(bonds) if i == 1 and species[j] == 1)
    stretched = _stretched(frame, int(bonds[k, 0]), int(bonds[k, 1]), ref[k] + 0.6)
    # Two methyl hydrogens pinched to 0.95 Å (DFT minimum ~1.45 Å), every bond kept.
    h1, h2 = [int(j) for i, j in bonds if i == 1 and species[j] == 1][:2]
    pinched = _pinched(frame, 1, h1, h2, 0.95)
    assert np.abs(bond_lengths(pinched, bonds) - ref).max() < 0.5  # the bond test alone misses it
    x = torch.tensor(np.stack([frame, stretched, pinched]), dtype=torch.float32)

    assert monitor.check(x).tolist() == [0, 2, 3]
    newly = monitor.update(x, step=40, time_fs=20.0)
    assert newly.tolist() == [False, True, True]
    assert monitor.left.tolist() == [False, True, True]
    assert monitor.first_step.tolist() == [-1, 40, 40]
    assert monitor.reasons == ["", "bond", "collapse"]
    summary = monitor.summary()
    assert summary.fraction_stable == pytest.approx(1 / 3)
    assert summary.median_time_left_fs == 20.0 and summary.median_survival_fs == 20.0
    assert summary.reasons == {"nonfinite": 0, "bond": 1, "collapse": 1}

    # Later: the first replica breaks (non-finite); the others keep their first record.
    x2 = x.clone()
    x2[0, 3, 0] = float("nan")
    monitor.update(x2, step=80, time_fs=40.0)
    assert monitor.first_step.tolist() == [80, 40, 40]
    assert monitor.time_fs.tolist() == [40.0, 20.0, 20.0]
    assert monitor.reasons == ["nonfinite", "bond", "collapse"] and monitor.all_left
    assert monitor.summary().fraction_stable == 0.0

    with pytest.raises(CrmseError):
        monitor.update(x[:2], step=90)


def test_monitor_as_observer_of_a_langevin_run(ethanol_npz: Path) -> None:
    """An elastic network around a DFT frame keeps 500 K replicas in the basin; the same network
    at 1e6 K tears them apart, and the monitor sees that without stopping the run."""
    species, coords = load_ethanol(ethanol_npz)
    frame = torch.tensor(coords[0])
    i, j = torch.triu_indices(9, 9, offset=1)
    r0 = (frame[i] - frame[j]).norm(dim=-1)

    def force_fn(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            pos = x.detach().requires_grad_(True)
            e = (150.0 * ((pos[:, i] - pos[:, j]).norm(dim=-1) - r0) ** 2).sum(dim=1)
            (grad,) = torch.autograd.grad(e.sum(), pos)
        return e.detach(), -grad

    def run(temperature_K: float) -> StabilityMonitor:
        monitor = StabilityMonitor.from_reference(species, coords)
        md = LangevinBAOAB(
            force_fn, masses_from_species(species), temperature_K, 0.5, 0.05, torch.Generator().manual_seed(0)
        )
        md.attach(monitor, every=10)
        state = md.run(md.init_state(frame.expand(16, 9, 3).clone()), 200)
        assert state.step == 200 and monitor.last_step == 200
        return monitor

    cool = run(500.0).summary()
    assert cool.n_replicas == 16 and cool.fraction_stable == 1.0 and math.isnan(cool.median_time_left_fs)
    assert cool.median_survival_fs == math.inf
    hot = run(1e6)
    assert hot.summary().fraction_stable < 0.5
    left = hot.left
    assert torch.all(hot.first_step[left] % 10 == 0) and torch.all(hot.first_step[left] > 0)
    assert torch.allclose(hot.time_fs[left], 0.5 * hot.first_step[left].double())
