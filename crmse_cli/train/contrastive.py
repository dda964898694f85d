"""CRMSE post-training: MSE plus a contrastive term estimated with persistent Langevin chains.

The model's implicit Boltzmann distribution is p_theta(x) ∝ exp(-beta U_theta(x)). The gradient of
KL(p_data || p_theta) in theta is beta (<dU/dtheta>_data - <dU/dtheta>_theta); its surrogate, with
the chain states detached (no gradient flows through the sampler), is

    L_C = beta * ( mean_{x in data batch} U(x) - mean_{c in chains} U(stopgrad(x_c)) )
    L   = L_MSE + lambda * L_C

(METHOD.md, "CRMSE post-training"). L_C is dimensionless, so lambda only means something next to
the units of L_MSE. The paper's lambda (and the field's trainers: nequip, SchNetPack, MACE, MDsim,
StABlE) weighs L_C against an L_MSE in eV and eV/Å; ours is computed in kcal/mol and kcal/mol/Å,
which is (23.0605)^2 = 531.8 times larger. ``lambda_units = "eV"`` (the default) therefore
optimises L_MSE[kcal] + 531.8 lambda L_C, i.e. 531.8 times the paper's loss: the same minimiser
and, with Adam, the same steps, while the gradient scale stays that of pretraining so the
inherited Adam moments remain valid. ``lambda_units = "kcal"`` is the convention of the
2026-12-01 study (lambda against L_MSE[kcal] directly). See ``docs/method.md``.

Before every parameter update each of the C persistent chains takes K steps of the unadjusted
Langevin algorithm (``crmse_cli.sampling.ula``) or of MALA (``crmse_cli.sampling.mala``, exact at
any step) with the current weights. Chains whose coordinates become non-finite or fly apart are
reset to training frames; an optional fraction is reset every update to keep them diverse.
Leaving the physical basin is NOT a reason to reset: those states are the negative samples.

Study arms (``ContrastiveConfig``, docs/method.md "Study arms"): ``chain_source = "data"`` replaces
the chains by fresh random positives every update (no sampler steps: L_C of zero mean, the pure
noise cost); ``positives = "split"`` draws the data term from a larger set of positions than the
labelled frames; lambda follows :class:`crmse_cli.train.lambda_schedule.LambdaSchedule`; and
``ema_decay`` keeps pretraining's weight average (``train/optim.py``) of the weights.

This module is model-agnostic: it takes an ``energy_fn(positions (B,N,3)) -> (B,)`` closure over
the model's parameters, so the same trainer runs the GNN and the small analytic models of the
tests. It knows nothing of the registry; logging, checkpointing and progress are observers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import ks_2samp

from crmse_cli.defaults import COLLAPSE_MARGIN_A
from crmse_cli.model.forces import ForceFn, forces_from_energy, laplacian_of, largest_curvature
from crmse_cli.sampling.chains import PersistentChains, pair_minimum
from crmse_cli.sampling.kinds import REGISTRY
from crmse_cli.train.contrastive_config import ContrastiveConfig, effective_lambda
from crmse_cli.train.distributed import DistContext
from crmse_cli.train.lambda_schedule import LambdaSchedule
from crmse_cli.train.loop import TrainingLoop
from crmse_cli.train.losses import mse_loss
from crmse_cli.units import KB_KCAL_PER_MOL_K
from crmse_cli.units import beta as beta_of

__all__ = [
    "ContrastiveConfig",
    "ContrastiveTrainer",
    "UpdateRecord",
    "effective_lambda",
    "pair_minimum",
]

logger = logging.getLogger(__name__)

EnergyFn = Callable[[torch.Tensor], torch.Tensor]
"""positions (B, N, 3) Å -> energies (B,) kcal/mol, differentiable in parameters and positions."""

RANK_SEED_STRIDE = 1_000_003
"""Rank r of a data-parallel run seeds its chains and batches with seed + r * this."""
STIFF_WARN = 0.2
"""ULA's variance bias on a mode of curvature k is 1/(1 - eta beta k/2): warn above eta beta k_max = 0.2."""


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
    grad_norm_mse: float = math.nan  # |grad L_MSE| (kcal units)
    grad_norm_c: float = math.nan  # |grad L_C|
    grad_ratio: float = math.nan  # |lambda_internal grad L_C| / |grad L_MSE|, unit-free
    acceptance: float = math.nan  # MALA: mean acceptance over chains and steps
    chain_tconf_K: float = math.nan  # <|F|^2> / (k_B <lap U>) over the chains (every tconf_every)
    lambda_eff: float = math.nan  # lambda of this update in the run's convention (schedule applied)


class ContrastiveTrainer:
    """Persistent-chain CRMSE trainer; iterate :meth:`updates` to run it one update at a time.

    Args:
        energy_fn: positions (B,N,3) -> energies (B,), a closure over ``parameters``.
        parameters: the trainable parameters (same order as pretraining's optimizer when its
            Adam state is loaded).
        train_positions: (F,N,3) training frames, Å.
        train_energies: (F,) DFT energies, kcal/mol (kept in float64).
        train_forces: (F,N,3) DFT forces, kcal/mol/Å.
        config: the hyper-parameters.
        pair_min_A: (N,N) minimum distance of each atom pair over the DFT frames, for the
            "outside the support" diagnostic (collapse margin ``support_margin_A``).
        optimizer_state: an Adam ``state_dict`` to continue from (``init = "raw"``).
        positive_positions: (P,N,3) positions of the data term of L_C when it is not the
            labelled frames (``positives = "split"``); None: the L_MSE batch's own frames.
        chain_force_fn: the chains' detached forces, positions (B,N,3) -> (energy (B,), forces
            (B,N,3)), e.g. a compiled ``model.forces.force_field`` of the same weights; None:
            autograd of ``energy_fn``.
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
        support_margin_A: float = COLLAPSE_MARGIN_A,
        optimizer_state: dict[str, Any] | None = None,
        dist: DistContext | None = None,
        positive_positions: torch.Tensor | None = None,
        chain_force_fn: ForceFn | None = None,
    ) -> None:
        self.dist = dist or DistContext()
        n_chains = self.dist.shard(config.n_chains, "chains")
        self.batch_size = self.dist.shard(config.batch_size, "batch_size")
        self.energy_fn = energy_fn
        self.chain_force_fn = chain_force_fn
        self.parameters = parameters
        self.x = train_positions
        self.e = train_energies.to(torch.float64)
        self.f = train_forces
        self.config = config
        self.weights = config.weights
        self.beta = beta_of(config.temperature_K)
        self.lc_scale = config.lc_scale  # beta (default) or 1/(energy unit): crmse_cli.train.readings
        self.positives = positive_positions
        self.loop: TrainingLoop[UpdateRecord] = TrainingLoop(
            parameters,
            lr=config.lr,
            grad_clip=config.grad_clip,
            ema_decay=config.ema_decay,
            optimizer_state=optimizer_state,
        )
        self.optimizer = self.loop.optimizer
        self.ema = self.loop.ema  # pretraining's weight average (train/optim.py), None when off
        self.lambda_schedule = LambdaSchedule.of(config)
        # Rank r draws from its own stream; rank 0's is the single-process one.
        seed = config.seed + RANK_SEED_STRIDE * self.dist.rank
        self.generator = torch.Generator(device=train_positions.device).manual_seed(seed)
        self.update = 0
        self.last_batch: torch.Tensor | None = None
        self.walkers = PersistentChains(
            train_positions,
            n_chains,
            self.generator,
            sampler=config.chain_sampler,
            eta_A2=config.eta_internal_A2,  # beta-scaled Å², whatever eta_units
            temperature_K=config.chain_T_K,
            fly_apart_A=config.fly_apart_A,
            reset_fraction=config.reset_fraction,
            pair_min_A=pair_min_A,
            support_margin_A=support_margin_A,
        )
        self._dft_energies = self.e.detach().cpu().numpy()
        self.stiffness = self._stiffness()

    @property
    def chains(self) -> torch.Tensor:
        """(C, N, 3) Å, the chains' current positions."""
        return self.walkers.positions

    @chains.setter
    def chains(self, value: torch.Tensor) -> None:
        self.walkers.positions = value

    # -- observers -----------------------------------------------------------------------------
    def attach(self, fn: Callable[[UpdateRecord], object], every: int = 1) -> None:
        """Call ``fn(record)`` after every ``every``-th update and after the last one."""
        self.loop.attach(fn, every)

    # -- state (for exact resume) --------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Update counter, this rank's chains, Adam, EMA, lambda schedule and generator: an exact resume."""
        return {
            "update": self.update,
            **self.walkers.state_dict(),  # "chains"
            **self.loop.state_dict(),  # "optimizer", "ema"
            "lambda_schedule": self.lambda_schedule.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (checkpoints from before the EMA and schedule too)."""
        self.update = int(state["update"])
        self.walkers.load_state_dict(state)
        self.loop.load_state_dict(state)
        if state.get("lambda_schedule") is not None:
            self.lambda_schedule.load_state_dict(state["lambda_schedule"])
        self.generator.set_state(state["generator"])

    # -- helpers -------------------------------------------------------------------------------
    def _stiffness(self) -> float:
        """Return eta * beta_chain * k_max on a training frame; warns when ULA's bias is large."""
        try:
            k_max = largest_curvature(self.energy_fn, self.x[0], iterations=30, seed=self.config.seed)
        except RuntimeError:  # models without double backward: no estimate
            return math.nan
        value = self.config.eta_internal_A2 * beta_of(self.config.chain_T_K) * k_max
        if value > STIFF_WARN and not self.walkers.kind.metropolis:
            inflation = 1.0 / max(1e-9, 1.0 - value / 2.0)
            exact = [k.name for k in REGISTRY.values() if k.chains and k.metropolis]
            logger.warning(
                "eta*beta*k_max = %.2f (> %.1f): %s's stiffest mode runs ~%.0f%% hot; "
                "use --chain-sampler %s or a smaller --eta-A2",
                value,
                STIFF_WARN,
                self.walkers.kind.name.upper(),
                100.0 * (inflation - 1.0),
                " or ".join(exact),
            )
        return value

    def _draw_index(self, n: int) -> torch.Tensor:
        return self.walkers.draw_index(n)

    def _draw_positives(self, n: int) -> torch.Tensor:
        """(n, N, 3) random positions of L_C's data distribution (the labelled frames or the pool)."""
        if self.positives is None:
            return self.walkers.draw(n)
        pool = self.positives
        return pool[torch.randint(0, pool.shape[0], (n,), generator=self.generator, device=pool.device)]

    def _force_fn(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.chain_force_fn is not None:
            return self.chain_force_fn(positions)
        pos = positions.detach().requires_grad_(True)
        energy = self.energy_fn(pos)
        forces = forces_from_energy(energy, pos, create_graph=False)
        return energy.detach(), forces.detach()

    def _lr(self) -> float:
        warm = self.config.warmup_updates
        if warm <= 0:
            return self.config.lr
        return self.config.lr * min(1.0, (self.update + 1) / warm)

    def chain_tconf(self) -> float:
        """Configurational temperature <|F|^2> / (k_B <lap U>) of the current chains (all ranks), K."""
        finite = torch.isfinite(self.chains).all(dim=(1, 2))
        force2, lap_sum = 0.0, 0.0
        if bool(finite.any()):
            pos = self.chains[finite]
            _, forces = self._force_fn(pos)
            force2 = float(forces.double().pow(2).sum())
            lap_sum = float(laplacian_of(self.energy_fn, pos).double().sum())
        force2, lap_sum = self.dist.reduce(force2), self.dist.reduce(lap_sum)
        return force2 / (KB_KCAL_PER_MOL_K * lap_sum) if lap_sum != 0 else math.nan

    # -- the update ----------------------------------------------------------------------------
    def step(self) -> UpdateRecord:
        """K chain steps for every chain, then one parameter update."""
        cfg = self.config
        if cfg.chain_source == "data":  # the null arm: fresh positives as negatives, no sampling
            self.chains = self._draw_positives(self.chains.shape[0]).clone()
            acceptance, resets = math.nan, 0
        else:
            acceptance = self.walkers.move(self._force_fn, cfg.steps_per_update)
            resets = self.walkers.reset_broken()
        idx = self._draw_index(self.batch_size)
        return self.gradient_step(idx, acceptance=acceptance, resets=resets)

    def gradient_step(
        self, idx: torch.Tensor, *, acceptance: float = math.nan, resets: int = 0
    ) -> UpdateRecord:
        """One parameter update on the training rows ``idx`` and the current chains.

        In a data-parallel run every rank passes its own rows and chains; gradients and
        statistics are averaged (or gathered) over ranks, so the update equals the
        single-process update on the union of the batches and chains.
        """
        cfg = self.config
        self.last_batch = idx
        pos = self.x[idx].detach().clone().requires_grad_(True)
        energy = self.energy_fn(pos)
        forces = forces_from_energy(energy, pos, create_graph=True)
        loss_mse, _ = mse_loss(energy, forces, self.e[idx], self.f[idx], self.weights)
        energy_chains = self.energy_fn(self.chains.detach())
        # The data term: the L_MSE batch's energies, or a batch of the larger positive set.
        energy_pos = energy if self.positives is None else self.energy_fn(self._draw_positives(len(idx)))
        loss_c = self.lc_scale * (energy_pos.mean() - energy_chains.mean())
        factor = self.lambda_schedule.factor
        lam = cfg.lambda_internal * factor
        params = [p for p in self.parameters if p.requires_grad]
        g_mse = _dense(torch.autograd.grad(loss_mse, params, retain_graph=True, allow_unused=True), params)
        g_c = _dense(torch.autograd.grad(loss_c, params, allow_unused=True), params)
        self.dist.mean_(g_mse + g_c)  # the union batch's gradients (DDP's all-reduce)
        norm_mse = _norm(g_mse)
        norm_c = _norm(g_c)
        lr = self._lr()
        grads = [gm + lam * gc if lam > 0 else gm for gm, gc in zip(g_mse, g_c, strict=True)]
        self.loop.apply(lr, grads=grads, average=False)  # already the ranks' mean
        self.update += 1
        all_chain_e = self.dist.gather(energy_chains.detach())
        e_chain = all_chain_e.cpu().numpy()
        finite = np.isfinite(e_chain)
        ks = float(ks_2samp(e_chain[finite], self._dft_energies).statistic) if finite.any() else 1.0
        min_pair, outside = self.walkers.geometry()
        min_pair, outside = self.dist.reduce(min_pair, "min"), self.dist.reduce(outside, "mean")
        self.lambda_schedule.observe_outside(outside)  # decides the next update's lambda
        resets = int(self.dist.reduce(float(resets)))
        acceptance = self.dist.reduce(acceptance, "mean")
        tconf = (
            self.chain_tconf()
            if cfg.tconf_every and (self.update % cfg.tconf_every == 0 or self.update == 1)
            else math.nan
        )
        mean = self.dist.reduce
        l_mse, l_c = mean(float(loss_mse.detach()), "mean"), mean(float(loss_c.detach()), "mean")
        return UpdateRecord(
            update=self.update,
            loss=l_mse + lam * l_c,
            loss_mse=l_mse,
            loss_c=l_c,
            energy_data=mean(float(energy.detach().mean()), "mean"),
            energy_chains=float(all_chain_e.mean()),
            energy_chains_min=float(all_chain_e.min()),
            chain_ks=ks,
            resets=resets,
            min_pair_A=min_pair,
            share_outside=outside,
            lr=lr,
            grad_norm_mse=norm_mse,
            grad_norm_c=norm_c,
            grad_ratio=lam * norm_c / norm_mse if norm_mse > 0 else math.nan,
            acceptance=acceptance,
            chain_tconf_K=tconf,
            lambda_eff=cfg.lambda_ * factor,
        )

    def updates(self, n: int | None = None) -> Iterator[UpdateRecord]:
        """Run updates until ``n`` (default: ``config.n_updates``) have been done in total."""
        total = self.config.n_updates if n is None else n
        while self.update < total:
            record = self.step()
            self.loop.notify(record, record.update, final=self.update >= total)
            yield record


def _dense(grads: tuple[torch.Tensor | None, ...], params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    """Gradients with zeros for parameters the loss does not touch, detached."""
    return [
        torch.zeros_like(p) if g is None else g.detach().clone() for g, p in zip(grads, params, strict=True)
    ]


def _norm(grads: list[torch.Tensor]) -> float:
    total = sum(float(g.double().pow(2).sum()) for g in grads)
    return math.sqrt(total)
