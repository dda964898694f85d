"""CRMSE post-training: MSE plus a contrastive term estimated with persistent Langevin chains.

The model's implicit Boltzmann distribution is p_theta(x) ∝ exp(-beta U_theta(x)). The gradient of
KL(p_data || p_theta) in theta is beta (<dU/dtheta>_data - <dU/dtheta>_theta); its surrogate, with
the chain states detached (no gradient flows through the sampler), is

    L_C = beta * ( mean_{x in data batch} U(x) - mean_{c in chains} U(stopgrad(x_c)) )
    L   = L_MSE + lambda * L_C

(METHOD.md, "CRMSE post-training"). Before every parameter update each of the C persistent chains
takes K steps of the unadjusted Langevin algorithm (``crmse_cli.sampling.ula``) with the current
weights. Chains whose coordinates become non-finite or fly apart are reset to training frames;
an optional fraction is reset every update to keep them diverse. Leaving the physical basin is
NOT a reason to reset: those states are the negative samples.

This module is model-agnostic: it takes an ``energy_fn(positions (B,N,3)) -> (B,)`` closure over
the model's parameters, so the same trainer runs the GNN and the small analytic models of the
tests. It knows nothing of the registry; logging, checkpointing and progress are observers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import ks_2samp

from crmse_cli.model.forces import forces_from_energy
from crmse_cli.sampling.ula import ula_steps
from crmse_cli.units import beta as beta_of

EnergyFn = Callable[[torch.Tensor], torch.Tensor]
"""positions (B, N, 3) Å -> energies (B,) kcal/mol, differentiable in parameters and positions."""


@dataclass(frozen=True)
class ContrastiveConfig:
    """Hyper-parameters of CRMSE post-training (units in the names).

    Attributes:
        lambda_: weight of the contrastive term (paper's operating point 0.015; 0 is the control:
            the same fine-tuning without the contrastive term).
        eta_A2: ULA step size eta in Å^2 (paper: 0.0004).
        steps_per_update: K, ULA steps every chain takes before each parameter update (paper 200).
        n_chains: C, the number of persistent chains.
        n_updates: number of parameter updates.
        temperature_K: temperature of the model's Boltzmann distribution (beta = 1/kT).
        lr: Adam learning rate after warm-up. A fresh Adam at 1e-4 wrecked the energy MAE in one
            update in a first trial; 3e-5 with 20 warm-up updates was safe.
        warmup_updates: linear learning-rate warm-up from lr/warmup_updates to lr.
        batch_size: training frames per update (for both L_MSE and the data term of L_C).
        energy_weight: w_E of L_MSE (kcal/mol)^-2, as in pretraining.
        force_weight: w_F of L_MSE (kcal/mol/Å)^-2, as in pretraining.
        reset_fraction: share of chains reset to random training frames every update (0 = only
            broken chains are reset).
        fly_apart_A: a chain whose atom lies farther than this from the chain's centroid is reset.
        grad_clip: gradient-norm clip of the total loss (None: off).
        seed: seed of chain noise, batch order and resets.
    """

    lambda_: float = 0.015
    eta_A2: float = 4e-4
    steps_per_update: int = 200
    n_chains: int = 64
    n_updates: int = 400
    temperature_K: float = 500.0
    lr: float = 3e-5
    warmup_updates: int = 20
    batch_size: int = 32
    energy_weight: float = 1.0
    force_weight: float = 1.0
    reset_fraction: float = 0.0
    fly_apart_A: float = 12.0
    grad_clip: float | None = 100.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.lambda_ < 0:
            raise ValueError("lambda_ must be >= 0")
        for name in ("eta_A2", "temperature_K", "lr"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("steps_per_update", "n_chains", "n_updates", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not 0.0 <= self.reset_fraction <= 1.0:
            raise ValueError("reset_fraction must lie in [0, 1]")


@dataclass(frozen=True)
class UpdateRecord:
    """What one parameter update measured (energies in kcal/mol, distances in Å)."""

    update: int
    loss: float
    loss_mse: float
    loss_c: float
    energy_data: float  # mean model energy on the data batch
    energy_chains: float  # mean model energy on the chains (before the update)
    energy_chains_min: float
    chain_ks: float  # KS statistic, chain model energies vs DFT energies of the training frames
    resets: int
    min_pair_A: float  # smallest interatomic distance over all chains
    share_outside: float  # share of chains with a pair closer than the DFT minimum - margin
    lr: float


class ContrastiveTrainer:
    """Persistent-chain CRMSE trainer; iterate :meth:`updates` to run it one update at a time.

    Args:
        energy_fn: positions (B,N,3) -> energies (B,), a closure over ``parameters``.
        parameters: the trainable parameters.
        train_positions: (F,N,3) training frames, Å.
        train_energies: (F,) DFT energies, kcal/mol.
        train_forces: (F,N,3) DFT forces, kcal/mol/Å.
        config: the hyper-parameters.
        pair_min_A: (N,N) minimum distance of each atom pair over the DFT frames, for the
            "outside the support" diagnostic (collapse margin ``support_margin_A``).
    """

    def __init__(
        self,
        energy_fn: EnergyFn,
        parameters: list[torch.nn.Parameter],
        train_positions: torch.Tensor,
        train_energies: torch.Tensor,
        train_forces: torch.Tensor,
        config: ContrastiveConfig,
        *,
        pair_min_A: torch.Tensor | None = None,
        support_margin_A: float = 0.3,
    ) -> None:
        self.energy_fn = energy_fn
        self.parameters = parameters
        self.x = train_positions
        self.e = train_energies
        self.f = train_forces
        self.config = config
        self.beta = beta_of(config.temperature_K)
        self.optimizer = torch.optim.Adam(parameters, lr=config.lr)
        self.generator = torch.Generator(device=train_positions.device).manual_seed(config.seed)
        self.update = 0
        self.chains = self._draw_frames(config.n_chains).clone()
        n = train_positions.shape[1]
        self.pair_min = pair_min_A
        self.support_margin = support_margin_A
        self._triu = torch.triu_indices(n, n, offset=1, device=train_positions.device)
        self._dft_energies = train_energies.detach().cpu().numpy()
        self._observers: list[tuple[Callable[[UpdateRecord], None], int]] = []

    # -- observers -----------------------------------------------------------------------------
    def attach(self, fn: Callable[[UpdateRecord], None], every: int = 1) -> None:
        """Call ``fn(record)`` after every ``every``-th update."""
        self._observers.append((fn, max(1, every)))

    # -- state (for exact resume) --------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "update": self.update,
            "chains": self.chains.detach().cpu(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.update = int(state["update"])
        self.chains = state["chains"].to(self.x.device, self.x.dtype)
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])

    # -- helpers -------------------------------------------------------------------------------
    def _draw_index(self, n: int) -> torch.Tensor:
        return torch.randint(0, self.x.shape[0], (n,), generator=self.generator, device=self.x.device)

    def _draw_frames(self, n: int) -> torch.Tensor:
        return self.x[self._draw_index(n)]

    def _force_fn(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pos = positions.detach().requires_grad_(True)
        energy = self.energy_fn(pos)
        forces = forces_from_energy(energy, pos, create_graph=False)
        return energy.detach(), forces.detach()

    def _lr(self) -> float:
        warm = self.config.warmup_updates
        if warm <= 0:
            return self.config.lr
        return self.config.lr * min(1.0, (self.update + 1) / warm)

    def _reset_broken(self) -> int:
        """Reset non-finite / flown-apart chains and a random fraction; return how many."""
        c = self.chains
        finite = torch.isfinite(c).all(dim=(1, 2))
        centred = torch.where(finite[:, None, None], c - c.mean(dim=1, keepdim=True), torch.zeros_like(c))
        spread = centred.norm(dim=-1).amax(dim=1)
        broken = ~finite | (spread > self.config.fly_apart_A)
        if self.config.reset_fraction > 0:
            u = torch.rand(c.shape[0], generator=self.generator, device=c.device)
            broken = broken | (u < self.config.reset_fraction)
        n = int(broken.sum())
        if n:
            self.chains = c.clone()
            self.chains[broken] = self._draw_frames(n)
        return n

    def _chain_geometry(self) -> tuple[float, float]:
        c = self.chains
        if self._triu.shape[1] == 0:  # one atom: no pairs to measure
            return float("nan"), float("nan")
        d = (c[:, self._triu[0]] - c[:, self._triu[1]]).norm(dim=-1)  # (C, P)
        min_pair = float(d.min())
        if self.pair_min is None:
            return min_pair, float("nan")
        limit = self.pair_min[self._triu[0], self._triu[1]] - self.support_margin
        outside = (d < limit).any(dim=1).float().mean()
        return min_pair, float(outside)

    # -- the update ----------------------------------------------------------------------------
    def step(self) -> UpdateRecord:
        """K ULA steps for every chain, then one parameter update."""
        cfg = self.config
        self.chains, _ = ula_steps(
            self._force_fn,
            self.chains,
            cfg.steps_per_update,
            eta_A2=cfg.eta_A2,
            temperature_K=cfg.temperature_K,
            generator=self.generator,
        )
        resets = self._reset_broken()
        idx = self._draw_index(cfg.batch_size)
        pos = self.x[idx].detach().clone().requires_grad_(True)
        energy = self.energy_fn(pos)
        forces = forces_from_energy(energy, pos, create_graph=True)
        loss_mse = (
            cfg.energy_weight * (energy - self.e[idx]).pow(2).mean()
            + cfg.force_weight * (forces - self.f[idx]).pow(2).mean()
        )
        energy_chains = self.energy_fn(self.chains.detach())
        loss_c = self.beta * (energy.mean() - energy_chains.mean())
        loss = loss_mse + cfg.lambda_ * loss_c if cfg.lambda_ > 0 else loss_mse
        lr = self._lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.parameters, cfg.grad_clip)
        self.optimizer.step()
        self.update += 1
        e_chain = energy_chains.detach().cpu().numpy()
        finite = np.isfinite(e_chain)
        ks = float(ks_2samp(e_chain[finite], self._dft_energies).statistic) if finite.any() else 1.0
        min_pair, outside = self._chain_geometry()
        return UpdateRecord(
            update=self.update,
            loss=float(loss.detach()),
            loss_mse=float(loss_mse.detach()),
            loss_c=float(loss_c.detach()),
            energy_data=float(energy.detach().mean()),
            energy_chains=float(energy_chains.detach().mean()),
            energy_chains_min=float(energy_chains.detach().min()),
            chain_ks=ks,
            resets=resets,
            min_pair_A=min_pair,
            share_outside=outside,
            lr=lr,
        )

    def updates(self, n: int | None = None) -> Iterator[UpdateRecord]:
        """Run updates until ``n`` (default: ``config.n_updates``) have been done in total."""
        total = self.config.n_updates if n is None else n
        while self.update < total:
            record = self.step()
            for fn, every in self._observers:
                if record.update % every == 0:
                    fn(record)
            yield record


def pair_minimum(positions: torch.Tensor) -> torch.Tensor:
    """(N,N) minimum distance of every atom pair over frames (F,N,3); diagonal +inf."""
    n = positions.shape[1]
    out = torch.full((n, n), math.inf, dtype=positions.dtype, device=positions.device)
    for chunk in positions.split(2048):
        d = torch.cdist(chunk, chunk).amin(dim=0)
        out = torch.minimum(out, d)
    out.fill_diagonal_(math.inf)
    return out
