"""Persistent chains of CRMSE (persistent contrastive divergence): state, moves, resets, diagnostics.

C chains start from random training frames and are carried over from one parameter update to
the next. Each update moves them by K steps of a chain sampler (ULA or MALA, any registered kind
with ``chains``: :mod:`crmse_cli.sampling.kinds`) with the current weights: the same
:class:`~crmse_cli.sampling.observers.Sampler` objects ``crmse sample`` runs. Chains whose
coordinates become non-finite or fly apart are reset to training frames; an optional random
fraction is reset every update to keep them diverse. Leaving the physical basin is NOT a reason
to reset: those states are the negative samples (METHOD.md, "CRMSE post-training").

The chains share the trainer's generator (frames drawn for resets and the batch draws of the
trainer come from one stream), so a seeded run, and a resumed one, are reproducible.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from crmse_cli.data.graph import min_pair_distances
from crmse_cli.defaults import COLLAPSE_MARGIN_A, ETA_A2, TEMPERATURE_K
from crmse_cli.sampling.kinds import (
    DEFAULT_CHAIN_SAMPLER,
    SamplerSettings,
    build_sampler,
    chain_sampler_names,
    sampler_kind,
)
from crmse_cli.sampling.observers import ForceFn
from crmse_cli.sampling.support import SupportTest


def pair_minimum(positions: torch.Tensor) -> torch.Tensor:
    """(N,N) minimum distance of every atom pair over frames (F,N,3), Å; diagonal +inf.

    The torch face of :func:`crmse_cli.data.graph.min_pair_distances` (one computation).
    """
    out = min_pair_distances(positions.detach().cpu().numpy())
    return torch.as_tensor(out, dtype=positions.dtype, device=positions.device)


class PersistentChains:
    """C persistent chains over the frames of one molecule.

    Args:
        frames: (F, N, 3) Å, the training frames chains start from and are reset to.
        n_chains: C.
        generator: the (shared) torch generator on the frames' device.
        sampler: a registered chain sampler's name ("ula", "mala").
        eta_A2: step size, Å^2.
        temperature_K: the temperature the chains sample at.
        fly_apart_A: a chain with an atom farther than this from its centroid is reset.
        reset_fraction: share of chains reset to random frames every update.
        pair_min_A: (N, N) DFT minimum of each pair, for the "outside the support" diagnostic.
        support_margin_A: a chain is outside the support when a pair is closer than its DFT
            minimum minus this margin (the stability monitor's collapse test).
    """

    def __init__(
        self,
        frames: torch.Tensor,
        n_chains: int,
        generator: torch.Generator,
        *,
        sampler: str = DEFAULT_CHAIN_SAMPLER,
        eta_A2: float = ETA_A2,
        temperature_K: float = TEMPERATURE_K,
        fly_apart_A: float = 12.0,
        reset_fraction: float = 0.0,
        pair_min_A: torch.Tensor | None = None,
        support_margin_A: float = COLLAPSE_MARGIN_A,
    ) -> None:
        if sampler not in (known := chain_sampler_names()):
            raise ValueError(f"chain sampler must be one of {', '.join(known)}, got {sampler!r}")
        self.frames = frames
        self.generator = generator
        self.sampler = sampler
        self.kind = sampler_kind(sampler)
        self.eta_A2 = eta_A2
        self.temperature_K = temperature_K
        self.fly_apart_A = fly_apart_A
        self.reset_fraction = reset_fraction
        self.support = SupportTest(pair_min_A, support_margin_A) if pair_min_A is not None else None
        n = frames.shape[1]
        self._triu = torch.triu_indices(n, n, offset=1, device=frames.device)
        self.positions = self.draw(n_chains).clone()

    def draw_index(self, n: int) -> torch.Tensor:
        """(n,) random frame indices from the shared generator."""
        f = self.frames
        return torch.randint(0, f.shape[0], (n,), generator=self.generator, device=f.device)

    def draw(self, n: int) -> torch.Tensor:
        """(n, N, 3) random frames."""
        return self.frames[self.draw_index(n)]

    def move(self, force_fn: ForceFn, n_steps: int) -> float:
        """``n_steps`` sampler steps of every chain; returns the acceptance (NaN without a Metropolis test).

        The sampler is built afresh each time (``force_fn`` closes over the weights of this
        update) and draws its noise from the shared generator.
        """
        settings = SamplerSettings(temperature_K=self.temperature_K, eta_A2=self.eta_A2)
        sampler = build_sampler(self.kind, force_fn, settings, generator=self.generator)
        state = sampler.advance(sampler.init_state(self.positions), n_steps)
        self.positions = state.positions
        return sampler.acceptance(state)

    def reset_broken(self) -> int:
        """Reset non-finite / flown-apart chains and a random fraction; return how many."""
        c = self.positions
        finite = torch.isfinite(c).all(dim=(1, 2))
        centred = torch.where(finite[:, None, None], c - c.mean(dim=1, keepdim=True), torch.zeros_like(c))
        spread = centred.norm(dim=-1).amax(dim=1)
        broken = ~finite | (spread > self.fly_apart_A)
        if self.reset_fraction > 0:
            u = torch.rand(c.shape[0], generator=self.generator, device=c.device)
            broken = broken | (u < self.reset_fraction)
        n = int(broken.sum())
        if n:
            self.positions = c.clone()
            self.positions[broken] = self.draw(n)
        return n

    def geometry(self) -> tuple[float, float]:
        """(smallest interatomic distance over all chains in Å, share of chains outside the support)."""
        c = self.positions
        if self._triu.shape[1] == 0:  # one atom: no pairs to measure
            return math.nan, math.nan
        d = (c[:, self._triu[0]] - c[:, self._triu[1]]).norm(dim=-1)  # (C, P)
        min_pair = float(d.min())
        if self.support is None:
            return min_pair, math.nan
        return min_pair, float(self.support.below(d).float().mean())

    def state_dict(self) -> dict[str, Any]:
        """The chains' positions (the generator is saved by its owner)."""
        return {"chains": self.positions.detach().cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s positions onto the frames' device and dtype."""
        self.positions = state["chains"].to(self.frames.device, self.frames.dtype)
