"""Statistical cross-check of LangevinBAOAB against ASE's Langevin on the same harmonic potential."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ase import Atoms
from ase import units as ase_units
from ase.calculators.calculator import Calculator, all_changes
from ase.md.langevin import Langevin

from crmse_cli import units
from crmse_cli.sampling import LangevinBAOAB, init_velocities

K_SPRING = 100.0  # kcal/mol/Å^2
MASS = 12.0  # amu
TEMP = 300.0  # K
DT_FS = 2.0
FRICTION_PER_FS = 0.05
N_ATOMS = 256  # independent wells: per-atom statistics pool over atoms
N_STEPS = 3000
BURN_IN = 100
EVERY = 5


class HarmonicWells(Calculator):
    """Each atom in its own well U_i = k/2 |r_i|^2, reported in ASE's eV and eV/Å."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):  # type: ignore[no-untyped-def]
        super().calculate(atoms, properties, system_changes)
        r = self.atoms.get_positions()
        self.results["energy"] = 0.5 * K_SPRING * float((r * r).sum()) * units.EV_PER_KCAL_PER_MOL
        self.results["forces"] = -K_SPRING * r * units.EV_PER_KCAL_PER_MOL


def per_atom_energy_stats(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the per-atom energy (kcal/mol) in each of 10 time blocks.

    u: (T, M) per-atom energies over time, M atoms (pooled over replicas).
    """
    blocks = np.array_split(u, 10, axis=0)
    return np.array([b.mean() for b in blocks]), np.array([b.var() for b in blocks])


def run_ase(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kt = units.kT(TEMP)
    atoms = Atoms(numbers=[6] * N_ATOMS, positions=rng.normal(0, math.sqrt(kt / K_SPRING), (N_ATOMS, 3)))
    atoms.set_masses([MASS] * N_ATOMS)
    # ASE velocities are in Å per ASE time unit; fs = ase.units.fs ASE time units.
    v_fs = rng.normal(0, math.sqrt(kt * units.AMU_A2_FS2_PER_KCAL_PER_MOL / MASS), (N_ATOMS, 3))
    atoms.set_velocities(v_fs / ase_units.fs)
    atoms.calc = HarmonicWells()
    dyn = Langevin(
        atoms,
        DT_FS * ase_units.fs,
        temperature_K=TEMP,
        friction=FRICTION_PER_FS / ase_units.fs,
        fixcm=False,
        rng=rng,
    )
    frames: list[np.ndarray] = []

    def record() -> None:
        if dyn.nsteps > BURN_IN:
            r = atoms.get_positions()
            frames.append(0.5 * K_SPRING * (r * r).sum(axis=1))

    dyn.attach(record, interval=EVERY)
    dyn.run(N_STEPS)
    return np.stack(frames)


def run_baoab(seed: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    kt = units.kT(TEMP)
    b, n = 16, N_ATOMS // 4  # 4x the independent wells of the ASE run: it is cheap

    def force_fn(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return 0.5 * K_SPRING * x.pow(2).sum(dim=(1, 2)), -K_SPRING * x

    masses = torch.full((n,), MASS, dtype=torch.float64)
    md = LangevinBAOAB(force_fn, masses, TEMP, DT_FS, FRICTION_PER_FS, g)
    x = math.sqrt(kt / K_SPRING) * torch.randn((b, n, 3), generator=g, dtype=torch.float64)
    v = init_velocities(masses, TEMP, b, g, dtype=torch.float64, zero_com_momentum=False)
    frames = [
        (0.5 * K_SPRING * s.positions.pow(2).sum(dim=-1)).reshape(-1).numpy()
        for s in md.irun(md.init_state(x, v), N_STEPS)
        if s.step > BURN_IN and s.step % EVERY == 0
    ]
    return np.stack(frames)


@pytest.mark.slow
def test_baoab_agrees_with_ase_langevin_on_a_harmonic_potential() -> None:
    """Per-atom potential energy: mean 3/2 kT and variance 3/2 (kT)^2 (chi-square, 3 dof) for both."""
    kt = units.kT(TEMP)
    mean_a, var_a = per_atom_energy_stats(run_ase(0))
    mean_b, var_b = per_atom_energy_stats(run_baoab(0))

    def se(x: np.ndarray) -> float:
        return float(x.std(ddof=1) / math.sqrt(len(x)))

    for ours, theirs, exact in ((mean_b, mean_a, 1.5 * kt), (var_b, var_a, 1.5 * kt * kt)):
        joint = math.hypot(se(ours), se(theirs))
        assert abs(ours.mean() - theirs.mean()) < 4 * joint
        assert abs(ours.mean() - exact) < 4 * se(ours)
        assert abs(theirs.mean() - exact) < 4 * se(theirs)
        assert joint < 0.03 * exact  # the comparison is sharp enough to mean something
