"""The maths of ``crmse diagnose``: is a post-trained model repaired or softened? (issue 13).

Each part compares model surfaces (:class:`ModelSurface`: a label and a differentiable energy
callable) with the MSE model's, using the instruments of :mod:`crmse_cli.analysis.instruments`,
and returns metric rows ``name -> (value, unit)`` and the arrays behind them. A surface labelled
``run`` names its metrics plainly, any other label adds ``_<label>`` (``hessian_ratio_soft_control``).
The stage (:mod:`crmse_cli.stages.diagnose`) resolves the runs, reads the registry and stores
what these return; nothing here touches the registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from crmse_cli.analysis.instruments import (
    HessianComparison,
    compare_hessians,
    energy_lift,
    mode_projections,
    slope_through_origin,
)
from crmse_cli.analysis.stats import energy_ks
from crmse_cli.data.dataset import Dataset
from crmse_cli.model.forces import EnergyFn, forces_from_energy
from crmse_cli.sampling.monitor import REASONS, StabilityMonitor
from crmse_cli.sampling.sample_meta import SampleMeta
from crmse_cli.sampling.trajectory import load_trajectory

BURN_IN_FRACTION = 0.1
"""Share of each trajectory dropped before the energy KS (as in ``crmse evaluate``)."""
COLLAPSE = REASONS.index("collapse")

Metrics = dict[str, tuple[float, str]]
Arrays = dict[str, np.ndarray]


@dataclass(frozen=True, eq=False)
class ModelSurface:
    """One model's energy surface: its label (run, mse, control), energy callable and device."""

    label: str
    energy_fn: EnergyFn
    device: torch.device

    @property
    def suffix(self) -> str:
        """What the label adds to a metric name: nothing for ``run``, else ``_<label>``."""
        return "" if self.label == "run" else f"_{self.label}"


def energies_and_forces(
    model: ModelSurface, positions: np.ndarray, *, batch: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Energies (F,) and forces (F, N, 3) of frames under a model, float64, in batches."""
    es, fs = [], []
    for start in range(0, len(positions), batch):
        pos = torch.as_tensor(positions[start : start + batch], dtype=torch.float64, device=model.device)
        pos.requires_grad_(True)
        e = model.energy_fn(pos)
        f = forces_from_energy(e, pos, create_graph=False)
        es.append(e.detach().cpu().numpy())
        fs.append(f.detach().cpu().numpy())
    if not es:
        return np.zeros(0), np.zeros((0, *positions.shape[1:]))
    return np.concatenate(es), np.concatenate(fs)


def sampled_energies(path: Path) -> np.ndarray:
    """The finite energies of a samples file after the burn-in (:data:`BURN_IN_FRACTION`)."""
    traj = load_trajectory(path)
    first = min(int(math.floor(BURN_IN_FRACTION * traj.energies.shape[0])), traj.energies.shape[0] - 1)
    e = traj.energies[first:].ravel()
    out: np.ndarray = e[np.isfinite(e)]
    return out


def collapsed_frames(
    paths: list[Path], monitor: StabilityMonitor, limit: int, seed: int
) -> tuple[np.ndarray, float | None]:
    """Frames (F, N, 3) of sample artifacts that fail the pair-collapse test, and their temperature.

    Every recorded frame is checked again with ``monitor`` (built from the DFT reference frames);
    at most ``limit`` frames are kept (a seeded random pick).
    """
    frames, temps = [], []
    for path in paths:
        traj = load_trajectory(path)
        pos = traj.positions.reshape(-1, *traj.positions.shape[2:]).astype(np.float64)
        code = monitor.check(torch.as_tensor(pos)).numpy()
        frames.append(pos[code == COLLAPSE])
        temps.append(SampleMeta.from_dict(traj.meta, where=f"samples file {path}").temperature_K)
    out = np.concatenate(frames) if frames else np.zeros((0, monitor.n_atoms, 3))
    if len(out) > limit:
        out = out[np.sort(np.random.default_rng(seed).choice(len(out), size=limit, replace=False))]
    return out, (temps[0] if temps else None)


def hessian_part(
    models: list[ModelSurface],
    mse: ModelSurface,
    start: np.ndarray,
    *,
    fmax: float,
    soft_modes: int,
    stiff_modes: int,
    masses: np.ndarray | None,
) -> tuple[Metrics, Arrays, dict[str, HessianComparison]]:
    """Hessians at each model's minimum (relaxed from ``start`` (N, 3) Å) against the MSE model's."""
    metrics: Metrics = {}
    arrays: Arrays = {}
    comps = {}
    for m in models:
        cmp = compare_hessians(m.energy_fn, mse.energy_fn, start, masses=masses, fmax=fmax)
        comps[m.label] = cmp
        sfx = m.suffix
        metrics[f"hessian_ratio_soft{sfx}"] = (cmp.soft_ratio(soft_modes), "1")
        metrics[f"hessian_ratio_stiff{sfx}"] = (cmp.stiff_ratio(stiff_modes), "1")
        metrics[f"minimum_rmsd{sfx}_A"] = (cmp.minimum_rmsd_A, "A")
        arrays[f"ratios{sfx}"] = cmp.ratios
        arrays[f"eigen_ratios{sfx}"] = cmp.eigen_ratios
        arrays[f"eigenvalues{sfx}"] = cmp.run_eigenvalues
        arrays[f"minimum{sfx}"] = cmp.run_minimum.positions
    first = comps[models[0].label]
    arrays["eigenvalues_mse"] = first.ref_eigenvalues
    arrays["minimum_mse"] = first.ref_minimum.positions
    arrays["mse_vectors"] = first.ref_vectors
    metrics["softest_eigenvalue_mse"] = (float(first.ref_eigenvalues[0]), first.unit)
    return metrics, arrays, comps


def slope_part(
    models: list[ModelSurface],
    data: Dataset,
    split: str,
    cmp: HessianComparison,
    *,
    soft_modes: int,
    max_test_frames: int,
    masses: np.ndarray | None,
) -> tuple[Metrics, Arrays]:
    """Slope of each model's forces against DFT's along the MSE model's softest modes (test frames)."""
    _, test = data.split(split)
    test = test[:max_test_frames]
    if len(test) == 0:
        return {}, {}
    pos, f_dft = data.positions[test], data.forces[test]
    vectors = cmp.ref_vectors[:, :soft_modes]
    ref_min = cmp.ref_minimum.positions
    p_dft = mode_projections(pos, f_dft, ref_min, vectors, masses)
    metrics: Metrics = {}
    arrays: Arrays = {}
    for m in models:
        _, f = energies_and_forces(m, pos)
        slopes = slope_through_origin(mode_projections(pos, f, ref_min, vectors, masses), p_dft)
        metrics[f"soft_force_slope{m.suffix}"] = (float(np.mean(slopes)), "1")
        arrays[f"soft_force_slopes{m.suffix}"] = slopes
    metrics["n_test_frames"] = (float(len(test)), "1")
    return metrics, arrays


def collapse_part(
    models: list[ModelSurface],
    mse: ModelSurface,
    comps: dict[str, HessianComparison],
    frames: np.ndarray,
    temperature_K: float,
) -> tuple[Metrics, Arrays]:
    """How far each model lifts the MSE model's collapsed frames above its own minimum, in kT."""
    metrics: Metrics = {"n_collapsed_frames": (float(len(frames)), "1")}
    arrays: Arrays = {}
    if len(frames) == 0:
        return metrics, arrays
    e_mse, _ = energies_and_forces(mse, frames)
    e_mse_min = comps[models[0].label].ref_minimum.energy
    for m in models:
        e, _ = energies_and_forces(m, frames)
        lift = energy_lift(e, comps[m.label].run_minimum.energy, e_mse, e_mse_min, temperature_K)
        sfx = m.suffix
        metrics[f"collapse_lift{sfx}_kT"] = (lift.median_lift_kT, "kT")
        metrics[f"collapse_energy{sfx}_kT"] = (float(np.median(lift.run_kT)), "kT")
        arrays[f"collapse_lift{sfx}_kT"] = lift.lift_kT
        metrics["collapse_energy_mse_kT"] = (float(np.median(lift.ref_kT)), "kT")
    metrics["collapse_temperature_K"] = (temperature_K, "K")
    return metrics, arrays


def energy_ks_part(energies: dict[str, np.ndarray], ref_e: np.ndarray) -> Metrics:
    """Energy KS of each label's sampled energies against the reference's and the MSE model's."""
    energies = {k: v for k, v in energies.items() if v.size}
    out: Metrics = {}
    for label, e in energies.items():
        out[f"energy_ks_{label}_vs_dft"] = (energy_ks(e, ref_e), "1")
        if label != "mse" and "mse" in energies:
            out[f"energy_ks_{label}_vs_mse"] = (energy_ks(e, energies["mse"]), "1")
    return out
