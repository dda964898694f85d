"""The overdamped unadjusted Langevin algorithm (ULA) of METHOD.md, batched over chains.

    x <- x - eta * beta * grad U(x) + sqrt(2 eta) * xi  =  x + eta * beta * F(x) + sqrt(2 eta) * xi,
    xi ~ N(0, I),  eta in Å^2,  beta = 1 / (k_B T) in mol/kcal,  F = -grad U in kcal/mol/Å.

It is the Euler-Maruyama discretisation of dx = beta F dt + sqrt(2) dW (time in Å^2), whose
stationary law is exp(-beta U); without a Metropolis correction the chain's law is biased at
O(eta): on U = k/2 |x|^2 the stationary variance per coordinate is (kT/k) / (1 - eta beta k / 2).
There is no physical time: states carry ``time_fs = NaN``; use ``step``.

One class (:class:`ULA`) is both ``crmse sample --integrator ula`` and the CRMSE trainer's
persistent chains (:mod:`crmse_cli.sampling.chains`); :func:`ula_steps` is its functional face.
Forces are taken detached from ``force_fn``; no autograd graph is kept across steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self, TypeVar

import numpy as np
import torch

from crmse_cli.errors import CrmseError
from crmse_cli.sampling.observers import ForceFn, Sampler, SamplerState
from crmse_cli.sampling.shard import ReplicaRows, randn_rows
from crmse_cli.units import beta as beta_of

if TYPE_CHECKING:
    from crmse_cli.sampling.kinds import SamplerSettings


@dataclass(frozen=True)
class ULAState:
    """One instant of B chains.

    Attributes:
        positions: (B, N, 3) Å.
        energy: (B,) kcal/mol at ``positions``.
        forces: (B, N, 3) kcal/mol/Å at ``positions`` (reused by the next step).
        step: steps taken since the state was created.
        time_fs: always NaN (ULA has no physical time); kept so observers read every state alike.
    """

    positions: torch.Tensor
    energy: torch.Tensor
    forces: torch.Tensor
    step: int = 0
    time_fs: float = math.nan


def check_overdamped(sampler: str, eta_A2: float, temperature_K: float, n_steps: int = 0) -> None:
    """Refuse a step size, temperature or step count an overdamped sampler cannot run with.

    Args:
        sampler: the sampler's name in the message ("ULA", "MALA").
        eta_A2: step size, Å^2 (> 0).
        temperature_K: T (> 0).
        n_steps: steps to take (>= 0).

    Raises:
        CrmseError: one of them is out of range.
    """
    if not (eta_A2 > 0 and temperature_K > 0):
        raise CrmseError(
            f"{sampler} needs eta_A2 > 0 and temperature_K > 0, got {eta_A2} and {temperature_K}"
        )
    if n_steps < 0:
        raise CrmseError(f"number of {sampler} steps must be >= 0, got {n_steps}")


def ula_update(
    positions: torch.Tensor,
    forces: torch.Tensor,
    *,
    eta_A2: float,
    beta: float,
    generator: torch.Generator,
    rows: ReplicaRows | None = None,
) -> torch.Tensor:
    """One ULA move x + eta beta F + sqrt(2 eta) xi, out of place. (B, N, 3) Å -> (B, N, 3) Å.

    ``rows``: the chains are these rows of a larger batch; xi is those rows of its draw.
    """
    xi = randn_rows(
        positions.shape, generator=generator, dtype=positions.dtype, device=positions.device, rows=rows
    )
    return positions + (eta_A2 * beta) * forces + math.sqrt(2.0 * eta_A2) * xi


def ula_steps(
    force_fn: ForceFn,
    positions: torch.Tensor,
    n_steps: int,
    *,
    eta_A2: float,
    temperature_K: float,
    generator: torch.Generator,
    observer: Callable[[ULAState], object] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advance B chains by ``n_steps`` ULA steps (n_steps + 1 force evaluations).

    Args:
        force_fn: positions (B, N, 3) Å -> (energy (B,) kcal/mol, forces (B, N, 3) kcal/mol/Å).
        positions: (B, N, 3) Å start (not modified).
        n_steps: K >= 0.
        eta_A2: step size eta, Å^2 (paper: 4e-4).
        temperature_K: T of the target exp(-U/kT).
        generator: torch generator on the positions' device; seeding it makes chains reproducible.
        observer: optional ``fn(ULAState)`` called after every step.

    Returns:
        (positions (B, N, 3) Å, energy (B,) kcal/mol at those positions), both detached.
    """
    check_overdamped("ULA", eta_A2, temperature_K, n_steps)
    sampler = ULA(force_fn, temperature_K, eta_A2, generator)
    start = last = sampler.init_state(positions)
    for last in sampler.irun(start, n_steps):
        if observer is not None:
            observer(last)
    return last.positions, last.energy


S = TypeVar("S", bound=SamplerState)


class OverdampedSampler(Sampler[S]):
    """What ULA and MALA share as samplers: settings, generator and the first force evaluation.

    Args:
        force_fn: positions (B, N, 3) Å -> (energy (B,) kcal/mol, forces (B, N, 3) kcal/mol/Å).
        temperature_K: T of the target exp(-U/kT).
        eta_A2: step size eta, Å^2.
        generator: torch generator on the positions' device.
        rows: the chains are these rows of a larger batch (see :mod:`crmse_cli.sampling.shard`).
    """

    name = "overdamped Langevin"
    """The sampler's name in error messages."""

    def __init__(
        self,
        force_fn: ForceFn,
        temperature_K: float,
        eta_A2: float,
        generator: torch.Generator | None = None,
        rows: ReplicaRows | None = None,
    ) -> None:
        super().__init__()
        check_overdamped(self.name, eta_A2, temperature_K)
        self.force_fn = force_fn
        self.temperature_K = float(temperature_K)
        self.eta_A2 = float(eta_A2)
        self.beta = beta_of(temperature_K)
        self.generator = generator if generator is not None else torch.Generator()
        self.rows = rows

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
        """The sampler at ``settings``' temperature and step ``eta_A2`` (no masses: species unused)."""
        return cls(force_fn, settings.temperature_K, settings.eta_A2, generator, rows=rows)

    def evaluate(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A detached copy of ``positions`` (B, N, 3) Å with its energy (B,) and forces (B, N, 3)."""
        if positions.ndim != 3 or positions.shape[-1] != 3:
            raise CrmseError(f"positions must have shape (replicas, atoms, 3), got {tuple(positions.shape)}")
        x = positions.detach().clone()
        energy, forces = self.force_fn(x)
        return x, energy.detach(), forces.detach()


class ULA(OverdampedSampler[ULAState]):
    """ULA as a sampler with observers, one force evaluation per step.

    Arguments as :class:`OverdampedSampler`.
    """

    name = "ULA"

    def init_state(self, positions: torch.Tensor) -> ULAState:
        """Evaluate energy and forces at ``positions`` (B, N, 3) Å."""
        return ULAState(*self.evaluate(positions), 0)

    def step(self, state: ULAState) -> ULAState:
        """One ULA update (see :func:`ula_update`) and the forces at the new positions."""
        x = ula_update(
            state.positions,
            state.forces,
            eta_A2=self.eta_A2,
            beta=self.beta,
            generator=self.generator,
            rows=self.rows,
        )
        energy, forces = self.force_fn(x)
        return ULAState(x, energy.detach(), forces.detach(), state.step + 1)
