"""Batched Langevin molecular dynamics with the BAOAB splitting.

B replicas of one molecule (N atoms) are advanced as one (B, N, 3) tensor. One step of length dt
(Leimkuhler & Matthews, Appl. Math. Res. Express 2013, 34-56; "Rational construction of stochastic
numerical methods for molecular sampling"), with a = F/m the acceleration:

    B:  v <- v + (dt/2) F(x) / m
    A:  x <- x + (dt/2) v
    O:  v <- c1 v + c2 sqrt(kT/m) xi,   c1 = exp(-gamma dt),  c2 = sqrt(1 - c1^2),  xi ~ N(0, I)
    A:  x <- x + (dt/2) v
    B:  v <- v + (dt/2) F(x) / m      (F at the new x: the step's only force evaluation,
                                       reused by the next step's first B)

BAOAB samples configurations of a harmonic potential exactly at any stable dt and has the smallest
configurational error of the Langevin splittings. With gamma = 0 the O step is the identity and
BAOAB is velocity Verlet (no noise is drawn then).

Units: x Å, v Å/fs, t fs, m amu, F kcal/mol/Å, kT kcal/mol. F/m in kcal/mol/(Å amu) becomes Å/fs^2
through ``AMU_A2_FS2_PER_KCAL_PER_MOL`` (1 kcal/mol = 4.184e-4 amu Å^2/fs^2). ``friction_per_fs``
is gamma in 1/fs; ASE's ``Langevin(friction=0.01 / ase.units.fs)`` is the same 0.01/fs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import numpy as np
import torch
from ase.data import atomic_masses

from crmse_cli.defaults import FRICTION_PER_FS
from crmse_cli.errors import CrmseError
from crmse_cli.sampling.observers import ForceFn, Sampler
from crmse_cli.sampling.shard import ReplicaRows, randn_rows
from crmse_cli.units import AMU_A2_FS2_PER_KCAL_PER_MOL, KCAL_PER_MOL_PER_AMU_A2_FS2, kT

if TYPE_CHECKING:
    from crmse_cli.sampling.kinds import SamplerSettings

Masses = torch.Tensor | np.ndarray | Sequence[float]
"""(N,) atomic masses in amu."""

DEFAULT_FRICTION_PER_FS = FRICTION_PER_FS
"""gamma = 0.01/fs: velocities decorrelate in 100 fs, slow against bond vibrations (10-30 fs), so
the dynamics stays close to Newtonian while the thermostat equilibrates within a picosecond. The
value ASE's documentation suggests (``friction=0.01 / units.fs``)."""


@dataclass(frozen=True)
class LangevinState:
    """One instant of B replicas.

    Attributes:
        positions: (B, N, 3) Å.
        velocities: (B, N, 3) Å/fs.
        energy: (B,) kcal/mol, potential energy at ``positions``.
        forces: (B, N, 3) kcal/mol/Å at ``positions`` (reused by the next step).
        step: steps taken since the state was created.
        time_fs: simulated time in fs.
    """

    positions: torch.Tensor
    velocities: torch.Tensor
    energy: torch.Tensor
    forces: torch.Tensor
    step: int = 0
    time_fs: float = 0.0


def masses_from_species(species: np.ndarray | torch.Tensor | Sequence[int]) -> torch.Tensor:
    """Standard atomic masses in amu (ASE's table), (N,) float64."""
    z = torch.as_tensor(np.asarray(species, dtype=np.int64))
    if z.ndim != 1 or torch.any(z <= 0) or torch.any(z >= len(atomic_masses)):
        raise CrmseError("species must be a 1-D list of atomic numbers in 1..118")
    return torch.as_tensor(atomic_masses[z.numpy()], dtype=torch.float64)


def _check_masses(masses_amu: Masses) -> torch.Tensor:
    if isinstance(masses_amu, torch.Tensor):
        m = masses_amu.detach().to("cpu", torch.float64)
    else:
        m = torch.as_tensor(np.asarray(masses_amu, dtype=np.float64))
    if m.ndim != 1 or m.numel() == 0 or not bool(torch.all(torch.isfinite(m) & (m > 0))):
        raise CrmseError("masses_amu must be a non-empty 1-D array of positive masses in amu")
    return m


def init_velocities(
    masses_amu: Masses,
    temperature_K: float,
    n_replicas: int,
    generator: torch.Generator,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    zero_com_momentum: bool = True,
) -> torch.Tensor:
    """Maxwell-Boltzmann velocities, each component ~ N(0, kT/m), without rescaling.

    The centre-of-mass momentum of each replica is then removed (``zero_com_momentum``), which
    leaves 3N - 3 thermal degrees of freedom: :func:`kinetic_temperature` counts them so. Turn it
    off for a single particle or for independent particles in external wells.

    Args:
        masses_amu: (N,) amu.
        temperature_K: target temperature, K.
        n_replicas: B.
        generator: torch generator on ``device``, seeded by the caller.
        dtype: velocity dtype (float32 default).
        device: velocity device (default: the generator's).
        zero_com_momentum: subtract each replica's centre-of-mass velocity.

    Returns:
        (B, N, 3) Å/fs.
    """
    m = _check_masses(masses_amu)
    if temperature_K < 0 or n_replicas < 1:
        raise CrmseError("init_velocities needs temperature_K >= 0 and at least one replica")
    dev = torch.device(device) if device is not None else generator.device
    sigma = torch.sqrt(kT(temperature_K) * AMU_A2_FS2_PER_KCAL_PER_MOL / m).to(dev, dtype)
    xi = torch.randn((n_replicas, m.numel(), 3), generator=generator, dtype=dtype, device=dev)
    v = xi * sigma[None, :, None]
    if zero_com_momentum:
        v = v - com_velocity(v, m)
    return v


def com_velocity(velocities: torch.Tensor, masses_amu: torch.Tensor) -> torch.Tensor:
    """Centre-of-mass velocity of each replica, (B, 1, 3) Å/fs."""
    m = masses_amu.to(velocities.device, velocities.dtype)[None, :, None]
    return (m * velocities).sum(dim=1, keepdim=True) / m.sum()


def kinetic_energy(velocities: torch.Tensor, masses_amu: torch.Tensor) -> torch.Tensor:
    """Kinetic energy (1/2) sum m v^2 of each replica, (B,) kcal/mol."""
    m = masses_amu.to(velocities.device, velocities.dtype)[None, :, None]
    return 0.5 * KCAL_PER_MOL_PER_AMU_A2_FS2 * (m * velocities * velocities).sum(dim=(1, 2))


def kinetic_temperature(
    velocities: torch.Tensor, masses_amu: torch.Tensor, *, remove_com: bool = True
) -> torch.Tensor:
    """Instantaneous kinetic temperature of each replica, (B,) K.

    With ``remove_com`` (default) the centre-of-mass motion is subtracted and T = 2 K_int /
    ((3N - 3) k_B): the 3N - 3 internal degrees of freedom of a free molecule. This is right both
    for NVE runs started with zero COM momentum and for Langevin runs, whose noise also heats the
    COM (its 3 degrees of freedom are projected out, not miscounted). Without it, T = 2 K / (3N k_B).
    """
    n = velocities.shape[1]
    if remove_com:
        if n < 2:
            raise CrmseError("kinetic temperature without COM motion needs at least 2 atoms")
        velocities = velocities - com_velocity(velocities, masses_amu)
    dof = 3 * n - 3 if remove_com else 3 * n
    return 2.0 * kinetic_energy(velocities, masses_amu) / (dof * kT(1.0))


class LangevinBAOAB(Sampler[LangevinState]):
    """Langevin dynamics of B replicas with the BAOAB splitting (see the module docstring).

    Args:
        force_fn: positions (B, N, 3) Å -> (energy (B,) kcal/mol, forces (B, N, 3) kcal/mol/Å),
            detached from any autograd graph.
        masses_amu: (N,) amu, e.g. :func:`masses_from_species`.
        temperature_K: bath temperature, K.
        timestep_fs: dt, fs (0.5 fs is the protocol's for molecules with H).
        friction_per_fs: gamma, 1/fs (0 = velocity Verlet, NVE).
        generator: torch generator for the O-step noise, on the device of the positions; seeding
            it makes runs bit-identical.
        rows: this sampler integrates only these rows of a larger batch (one worker of
            ``crmse sample --processes``); initial velocities and noise are those rows of the
            whole batch's draws (:mod:`crmse_cli.sampling.shard`).
    """

    def __init__(
        self,
        force_fn: ForceFn,
        masses_amu: Masses,
        temperature_K: float,
        timestep_fs: float,
        friction_per_fs: float = DEFAULT_FRICTION_PER_FS,
        generator: torch.Generator | None = None,
        rows: ReplicaRows | None = None,
    ) -> None:
        super().__init__()
        if not (temperature_K >= 0 and timestep_fs > 0 and friction_per_fs >= 0):
            raise CrmseError(
                "Langevin needs temperature_K >= 0, timestep_fs > 0 and friction_per_fs >= 0, got "
                f"{temperature_K}, {timestep_fs}, {friction_per_fs}"
            )
        self.force_fn = force_fn
        self.masses_amu = _check_masses(masses_amu)
        self.temperature_K = float(temperature_K)
        self.timestep_fs = float(timestep_fs)
        self.friction_per_fs = float(friction_per_fs)
        self.generator = generator if generator is not None else torch.Generator()
        self.rows = rows
        self.c1 = math.exp(-self.friction_per_fs * self.timestep_fs)
        self.c2 = math.sqrt(max(0.0, 1.0 - self.c1 * self.c1))
        self._cache: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def from_settings(
        cls,
        force_fn: ForceFn,
        settings: SamplerSettings,
        *,
        generator: torch.Generator,
        species: Sequence[int] | np.ndarray | None = None,
        dtype: torch.dtype | None = None,
        rows: ReplicaRows | None = None,
    ) -> Self:
        """BAOAB at ``settings``' temperature, timestep and friction; masses from ``species``.

        The masses pass through ``dtype`` (the positions'), as ``crmse sample`` has always built
        them, so a seeded run gives the same numbers as before.
        """
        if species is None:
            raise CrmseError("Langevin dynamics needs the species (its masses)")
        masses = masses_from_species(species)
        if dtype is not None:
            masses = masses.to(dtype=dtype)
        return cls(
            force_fn,
            masses,
            settings.temperature_K,
            settings.timestep_fs,
            settings.friction_per_fs,
            generator,
            rows=rows,
        )

    def _per_atom(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(dt/2 * conversion / m, c2 * sqrt(kT / m)) as (1, N, 1) tensors in x's dtype/device."""
        key = (x.dtype, x.device)
        if key not in self._cache:
            m = self.masses_amu
            half_kick = 0.5 * self.timestep_fs * AMU_A2_FS2_PER_KCAL_PER_MOL / m
            noise = self.c2 * torch.sqrt(kT(self.temperature_K) * AMU_A2_FS2_PER_KCAL_PER_MOL / m)
            self._cache[key] = (
                half_kick.to(x.device, x.dtype)[None, :, None],
                noise.to(x.device, x.dtype)[None, :, None],
            )
        return self._cache[key]

    def init_state(self, positions: torch.Tensor, velocities: torch.Tensor | None = None) -> LangevinState:
        """Evaluate forces at ``positions`` (B, N, 3) Å and set the velocities.

        Maxwell-Boltzmann velocities with zero COM momentum are drawn from ``self.generator``
        unless ``velocities`` (B, N, 3) Å/fs are given.
        """
        n = self.masses_amu.numel()
        if positions.ndim != 3 or positions.shape[1:] != (n, 3):
            raise CrmseError(f"positions must have shape (replicas, {n}, 3), got {tuple(positions.shape)}")
        x = positions.detach().clone()
        if velocities is None:
            rows = self.rows or ReplicaRows(0, x.shape[0], x.shape[0])
            if rows.count != x.shape[0]:
                raise CrmseError(f"{x.shape[0]} start positions for replica rows {rows.start}:{rows.stop}")
            v = init_velocities(
                self.masses_amu,
                self.temperature_K,
                rows.total,
                self.generator,
                dtype=x.dtype,
                device=x.device,
            )[rows.start : rows.stop]
        else:
            if velocities.shape != x.shape:
                raise CrmseError(f"velocities must have the shape of positions {tuple(x.shape)}")
            v = velocities.detach().to(x.device, x.dtype).clone()
        energy, forces = self.force_fn(x)
        return LangevinState(x, v, energy.detach(), forces.detach(), 0, 0.0)

    def step(self, state: LangevinState) -> LangevinState:
        """One BAOAB step: B A O A B with a single force evaluation (out of place)."""
        half_kick, noise = self._per_atom(state.positions)
        half_dt = 0.5 * self.timestep_fs
        v = state.velocities + half_kick * state.forces  # B
        x = state.positions + half_dt * v  # A
        if self.c2 > 0.0:  # O (identity when gamma = 0: velocity Verlet, no noise drawn)
            xi = randn_rows(v.shape, generator=self.generator, dtype=v.dtype, device=v.device, rows=self.rows)
            v = self.c1 * v + noise * xi
        x = x + half_dt * v  # A
        energy, forces = self.force_fn(x)
        energy, forces = energy.detach(), forces.detach()
        v = v + half_kick * forces  # B
        return LangevinState(x, v, energy, forces, state.step + 1, state.time_fs + self.timestep_fs)

    def kinetic_energy(self, state: LangevinState) -> torch.Tensor:
        """(B,) kcal/mol."""
        return kinetic_energy(state.velocities, self.masses_amu)

    def total_energy(self, state: LangevinState) -> torch.Tensor:
        """Potential plus kinetic energy, (B,) kcal/mol (conserved when friction is 0)."""
        return state.energy + self.kinetic_energy(state)

    def kinetic_temperature(self, state: LangevinState, *, remove_com: bool = True) -> torch.Tensor:
        """(B,) K; see :func:`kinetic_temperature` for the degrees of freedom."""
        return kinetic_temperature(state.velocities, self.masses_amu, remove_com=remove_com)
