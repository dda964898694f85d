"""The Metropolis-adjusted Langevin algorithm (MALA), batched over chains.

ULA (``crmse_cli.sampling.ula``) proposes y = x + eta beta F(x) + sqrt(2 eta) xi and always
accepts; its stationary law is biased at O(eta): a harmonic mode of curvature k runs with its
variance inflated by 1 / (1 - eta beta k / 2). MALA accepts the same proposal with probability

    alpha = min(1, exp(-beta (U(y) - U(x)) - |x - y - eta beta F(y)|^2 / (4 eta)
                       + |y - x - eta beta F(x)|^2 / (4 eta)))

(Roberts and Tweedie, Bernoulli 2, 341 (1996)), which makes exp(-beta U) exactly stationary at
any step size; rejected chains stay where they were. Each chain accepts or rejects on its own.
Units: eta in Å^2, beta in mol/kcal, F in kcal/mol/Å.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from crmse_cli.sampling.observers import ForceFn
from crmse_cli.sampling.shard import ReplicaRows, rand_rows, randn_rows
from crmse_cli.sampling.ula import OverdampedSampler, ULAState, check_overdamped


@dataclass(frozen=True)
class MALAState(ULAState):
    """One instant of B chains: :class:`crmse_cli.sampling.ula.ULAState` and the acceptance count.

    Attributes:
        accepted: (B,) accepted proposals per chain since the state was created.
    """

    accepted: torch.Tensor | None = None


def mala_step(
    force_fn: ForceFn,
    positions: torch.Tensor,
    energy: torch.Tensor,
    forces: torch.Tensor,
    *,
    eta_A2: float,
    beta: float,
    generator: torch.Generator,
    rows: ReplicaRows | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One MALA step for B chains.

    Args:
        force_fn: positions (B, N, 3) Å -> (energy (B,) kcal/mol, forces (B, N, 3) kcal/mol/Å).
        positions: (B, N, 3) Å, the current state.
        energy: (B,) kcal/mol at ``positions``.
        forces: (B, N, 3) kcal/mol/Å at ``positions``.
        eta_A2: step size, Å^2.
        beta: 1/kT, mol/kcal.
        generator: torch generator on the positions' device.
        rows: the chains are these rows of a larger batch; the noise is those rows of its draws.

    Returns:
        (positions, energy, forces, accepted (B,) bool), detached.
    """
    x, fx = positions.detach(), forces.detach()
    xi = randn_rows(x.shape, generator=generator, dtype=x.dtype, device=x.device, rows=rows)
    drift = eta_A2 * beta
    y = x + drift * fx + math.sqrt(2.0 * eta_A2) * xi
    ey, fy = force_fn(y)
    ey, fy = ey.detach(), fy.detach()
    forward = (y - x - drift * fx).pow(2).sum(dim=(1, 2))  # = 2 eta |xi|^2
    backward = (x - y - drift * fy).pow(2).sum(dim=(1, 2))
    log_alpha = -beta * (ey - energy.detach()) - (backward - forward) / (4.0 * eta_A2)
    u = rand_rows((x.shape[0],), generator=generator, dtype=x.dtype, device=x.device, rows=rows)
    accept = torch.isfinite(log_alpha) & (torch.log(u) < log_alpha)
    a3 = accept[:, None, None]
    return (
        torch.where(a3, y, x),
        torch.where(accept, ey, energy.detach()),
        torch.where(a3, fy, fx),
        accept,
    )


def mala_steps(
    force_fn: ForceFn,
    positions: torch.Tensor,
    n_steps: int,
    *,
    eta_A2: float,
    temperature_K: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Advance B chains by ``n_steps`` MALA steps (n_steps + 1 force evaluations).

    Returns:
        (positions (B, N, 3) Å, energy (B,) kcal/mol, acceptance rate (B,) in [0, 1]), detached.
    """
    check_overdamped("MALA", eta_A2, temperature_K, n_steps)
    sampler = MALA(force_fn, temperature_K, eta_A2, generator)
    state = sampler.advance(sampler.init_state(positions), n_steps)
    accepted = state.accepted if state.accepted is not None else torch.zeros_like(state.energy)
    return state.positions, state.energy, accepted / max(1, n_steps)


class MALA(OverdampedSampler[MALAState]):
    """MALA as a sampler with observers (``crmse sample --integrator mala``).

    Arguments as :class:`crmse_cli.sampling.ula.OverdampedSampler`.
    """

    name = "MALA"

    def init_state(self, positions: torch.Tensor) -> MALAState:
        """Evaluate energy and forces at ``positions`` (B, N, 3) Å."""
        x, energy, forces = self.evaluate(positions)
        zeros = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        return MALAState(x, energy, forces, 0, accepted=zeros)

    def step(self, state: MALAState) -> MALAState:
        """One MALA step (see :func:`mala_step`): propose, then accept or reject each chain."""
        x, e, f, acc = mala_step(
            self.force_fn,
            state.positions,
            state.energy,
            state.forces,
            eta_A2=self.eta_A2,
            beta=self.beta,
            generator=self.generator,
            rows=self.rows,
        )
        prev = state.accepted if state.accepted is not None else torch.zeros_like(acc, dtype=torch.float64)
        return MALAState(x, e, f, state.step + 1, accepted=prev + acc.double())

    def acceptance(self, state: MALAState) -> float:
        """Share of proposals accepted since the state's start, averaged over chains."""
        if state.accepted is None:
            return math.nan
        return float((state.accepted / max(1, state.step)).mean())
