"""Stability monitor: when did each replica leave the physical basin? (METHOD.md, "Stability").

A replica has left at the first observed state where

- ``nonfinite``: some coordinate is NaN or infinite;
- ``bond``: some bond of the molecule's bond graph deviates from its mean over the DFT reference
  frames by more than ``bond_tol_A`` (0.5 Å, Fu et al., TMLR 2023);
- ``collapse``: some atom pair (bonded or not) comes closer than its minimum over the DFT frames
  minus ``collapse_margin_A`` (0.3 Å). This catches the spurious minima where two hydrogens of
  one carbon meet at 0.9-1.0 Å while every bond stays within 0.5 Å of its mean.

When several apply at once the reason is the first in that order. The monitor is an observer
(``sampler.attach(monitor, every=n)``): it records, per replica, the first step and time it saw
the replica outside, and never stops the others. All checks are vectorised over replicas and
pairs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from crmse_cli.data.graph import bond_graph, bond_lengths, min_pair_distances
from crmse_cli.defaults import BOND_TOL_A, COLLAPSE_MARGIN_A
from crmse_cli.errors import CrmseError
from crmse_cli.sampling.observers import SamplerState
from crmse_cli.sampling.support import SupportTest

REASONS: tuple[str, ...] = ("", "nonfinite", "bond", "collapse")
"""Reason codes: index 0 means still in the basin."""


@dataclass(frozen=True)
class StabilitySummary:
    """What the monitor saw, over B replicas.

    Attributes:
        n_replicas: B.
        n_left: replicas that left the basin.
        fraction_stable: (B - n_left) / B.
        median_time_left_fs: median leaving time among the replicas that left (NaN if none, or if
            the sampler has no physical time).
        median_steps_left: the same in steps (NaN if none left).
        median_survival_fs: median leaving time over all replicas, those that never left counted
            as leaving after the end (so +inf when at least half stayed): the unbiased statistic.
        observed_steps: last step the monitor saw.
        observed_time_fs: time of that step.
        reasons: number of replicas per reason.
    """

    n_replicas: int
    n_left: int
    fraction_stable: float
    median_time_left_fs: float
    median_steps_left: float
    median_survival_fs: float
    observed_steps: int
    observed_time_fs: float
    reasons: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


class StabilityMonitor:
    """Per-replica record of leaving the physical basin.

    Args:
        bonds: (n_bonds, 2) atom index pairs, e.g. from :func:`crmse_cli.data.graph.bond_graph`.
        bond_ref_mean: (n_bonds,) Å, each bond's mean length over the DFT reference frames.
        pair_min_ref: (N, N) Å, each pair's minimum distance over the DFT reference frames.
        bond_tol_A: allowed deviation of a bond from its reference mean, Å.
        collapse_margin_A: allowed approach below a pair's reference minimum, Å.
    """

    def __init__(
        self,
        bonds: np.ndarray | torch.Tensor,
        bond_ref_mean: np.ndarray | torch.Tensor,
        pair_min_ref: np.ndarray | torch.Tensor,
        bond_tol_A: float = BOND_TOL_A,
        collapse_margin_A: float = COLLAPSE_MARGIN_A,
    ) -> None:
        self.bonds = torch.as_tensor(np.asarray(bonds, dtype=np.int64)).reshape(-1, 2)
        self.bond_ref_mean = torch.as_tensor(np.asarray(bond_ref_mean, dtype=np.float64))
        pmin = torch.as_tensor(np.asarray(pair_min_ref, dtype=np.float64))
        n = pmin.shape[0]
        if pmin.shape != (n, n) or self.bond_ref_mean.shape != (self.bonds.shape[0],):
            raise CrmseError(
                "stability monitor needs bonds (n, 2), bond_ref_mean (n,) and pair_min_ref (N, N)"
            )
        if self.bonds.numel() and (int(self.bonds.min()) < 0 or int(self.bonds.max()) >= n):
            raise CrmseError(f"stability monitor: bond indices must lie in 0..{n - 1}")
        if bond_tol_A <= 0 or collapse_margin_A < 0:
            raise CrmseError("stability monitor needs bond_tol_A > 0 and collapse_margin_A >= 0")
        self.n_atoms = n
        self.pair_min_ref = pmin
        self.bond_tol_A = float(bond_tol_A)
        self.collapse_margin_A = float(collapse_margin_A)
        self.support = SupportTest(pmin, self.collapse_margin_A)
        self.reset()

    @classmethod
    def from_reference(
        cls,
        species: np.ndarray,
        ref_positions: np.ndarray,
        bond_tol_A: float = BOND_TOL_A,
        collapse_margin_A: float = COLLAPSE_MARGIN_A,
    ) -> StabilityMonitor:
        """Build the bond graph and reference statistics from DFT frames (F, N, 3) Å."""
        ref = np.asarray(ref_positions, dtype=np.float64)
        if ref.ndim != 3 or ref.shape[0] == 0:
            raise CrmseError(f"reference positions must have shape (frames, atoms, 3), got {ref.shape}")
        bonds = bond_graph(species, ref)
        return cls(
            bonds,
            bond_lengths(ref, bonds).mean(axis=0),
            min_pair_distances(ref),
            bond_tol_A,
            collapse_margin_A,
        )

    def settings(self) -> dict[str, Any]:
        """The constructor's arguments as numpy arrays and floats.

        ``StabilityMonitor(**monitor.settings())`` builds a fresh monitor with the same criteria
        (in another process, say).
        """
        return {
            "bonds": self.bonds.numpy().copy(),
            "bond_ref_mean": self.bond_ref_mean.numpy().copy(),
            "pair_min_ref": self.pair_min_ref.numpy().copy(),
            "bond_tol_A": self.bond_tol_A,
            "collapse_margin_A": self.collapse_margin_A,
        }

    def reset(self) -> None:
        """Forget all records (the next observed batch fixes the number of replicas)."""
        self._left: torch.Tensor | None = None  # (B,) bool
        self._first_step = torch.zeros(0, dtype=torch.int64)  # (B,) -1 while in the basin
        self._time_fs = torch.zeros(0, dtype=torch.float64)  # (B,) NaN while in the basin
        self._reason = torch.zeros(0, dtype=torch.int8)  # (B,) index into REASONS
        self.last_step = -1
        self.last_time_fs = math.nan

    def check(self, positions: torch.Tensor) -> torch.Tensor:
        """Reason code per replica for one batch of states, (B,) int8 (0 = in the basin).

        Args:
            positions: (B, N, 3) Å.
        """
        if positions.ndim != 3 or positions.shape[1:] != (self.n_atoms, 3):
            shape = tuple(positions.shape)
            raise CrmseError(f"stability monitor expects positions (B, {self.n_atoms}, 3), got {shape}")
        x = positions.detach()
        nonfinite = ~torch.isfinite(x).all(dim=(1, 2))
        b = self.bonds.to(x.device)
        bond_len = (x[:, b[:, 0]] - x[:, b[:, 1]]).norm(dim=-1)  # (B, n_bonds)
        ref = self.bond_ref_mean.to(x.device, x.dtype)
        bond = ((bond_len - ref).abs() > self.bond_tol_A).any(dim=1)
        collapse = self.support.outside(x)
        code = torch.where(collapse, 3, 0)
        code = torch.where(bond, 2, code)
        code = torch.where(nonfinite, 1, code)
        return code.to(torch.int8)

    def update(self, positions: torch.Tensor, step: int, time_fs: float = math.nan) -> torch.Tensor:
        """Check a batch and record replicas that leave now for the first time; returns those (B,) bool."""
        code = self.check(positions).cpu()
        if self._left is None:
            nb = code.shape[0]
            self._left = torch.zeros(nb, dtype=torch.bool)
            self._first_step = torch.full((nb,), -1, dtype=torch.int64)
            self._time_fs = torch.full((nb,), math.nan, dtype=torch.float64)
            self._reason = torch.zeros(nb, dtype=torch.int8)
        elif code.shape[0] != self._left.shape[0]:
            before, now = self._left.shape[0], code.shape[0]
            raise CrmseError(f"stability monitor saw {before} replicas before and {now} now; call reset()")
        newly = (code > 0) & ~self._left
        self._left = self._left | newly
        self._first_step = torch.where(newly, int(step), self._first_step)
        self._time_fs = torch.where(newly, float(time_fs), self._time_fs)
        self._reason = torch.where(newly, code, self._reason)
        self.last_step = int(step)
        self.last_time_fs = float(time_fs)
        return newly

    def __call__(self, state: SamplerState) -> None:
        """Observer entry point: ``sampler.attach(monitor, every=n)``."""
        self.update(state.positions, state.step, state.time_fs)

    # -- records ----------------------------------------------------------------------------
    @property
    def n_replicas(self) -> int:
        """B, the number of replicas seen so far (0 before the first update)."""
        return 0 if self._left is None else int(self._left.shape[0])

    @property
    def left(self) -> torch.Tensor:
        """(B,) bool: the replica left the basin at some observed state."""
        return self._left.clone() if self._left is not None else torch.zeros(0, dtype=torch.bool)

    @property
    def first_step(self) -> torch.Tensor:
        """(B,) int64: first observed step outside the basin, -1 if never."""
        return self._first_step.clone()

    @property
    def time_fs(self) -> torch.Tensor:
        """(B,) float64 fs: time of :attr:`first_step`, NaN if never (or no physical time)."""
        return self._time_fs.clone()

    @property
    def reasons(self) -> list[str]:
        """Per replica: "" (still in the basin), "nonfinite", "bond" or "collapse"."""
        return [REASONS[int(c)] for c in self._reason]

    @property
    def all_left(self) -> bool:
        """True when every replica has left the basin (a sampler may stop then)."""
        return self._left is not None and bool(self._left.all())

    def summary(self) -> StabilitySummary:
        """Fraction stable, median leaving times and counts per reason."""
        b = self.n_replicas
        left = self.left.numpy()
        n_left = int(left.sum())
        time_fs = self._time_fs.numpy()
        steps = self._first_step.numpy()[left].astype(np.float64)
        survival = float(np.median(np.where(left, time_fs, np.inf))) if b else math.nan
        counts = {r: int((self._reason == k).sum()) for k, r in enumerate(REASONS) if k > 0}
        return StabilitySummary(
            n_replicas=b,
            n_left=n_left,
            fraction_stable=(b - n_left) / b if b else math.nan,
            median_time_left_fs=float(np.median(time_fs[left])) if n_left else math.nan,
            median_steps_left=float(np.median(steps)) if n_left else math.nan,
            median_survival_fs=survival,
            observed_steps=self.last_step,
            observed_time_fs=self.last_time_fs,
            reasons=counts,
        )

    def results(self) -> dict[str, np.ndarray]:
        """Arrays for an npz artifact (keys prefixed ``stability_``)."""
        return {
            "stability_left": self.left.numpy(),
            "stability_first_step": self._first_step.numpy().copy(),
            "stability_time_fs": self._time_fs.numpy().copy(),
            "stability_reason": np.array(self.reasons, dtype=np.str_).reshape(-1),
            "stability_bonds": self.bonds.numpy().copy(),
            "stability_observed_steps": np.array(self.last_step, dtype=np.int64),
        }

    def restore(self, results: dict[str, np.ndarray], observed_time_fs: float) -> None:
        """Take over the records of :meth:`results` (e.g. of shards of a batch, concatenated).

        Args:
            results: the ``stability_*`` arrays: ``left`` (B,), ``first_step`` (B,),
                ``time_fs`` (B,) fs, ``reason`` (B,) strings and ``observed_steps`` (0-d).
            observed_time_fs: time of the last observed step, fs (NaN without physical time).
        """
        left = np.asarray(results["stability_left"], dtype=bool).reshape(-1)
        try:
            codes = [REASONS.index(str(r)) for r in np.asarray(results["stability_reason"]).reshape(-1)]
        except ValueError as exc:
            raise CrmseError(f"unknown stability reason in the records: {exc}") from None
        parts = (results["stability_first_step"], results["stability_time_fs"], codes)
        if any(len(np.asarray(p).reshape(-1)) != left.shape[0] for p in parts):
            raise CrmseError("stability records of different lengths cannot be restored")
        self._left = torch.as_tensor(left)
        self._first_step = torch.as_tensor(np.asarray(results["stability_first_step"], dtype=np.int64))
        self._time_fs = torch.as_tensor(np.asarray(results["stability_time_fs"], dtype=np.float64))
        self._reason = torch.as_tensor(np.asarray(codes, dtype=np.int8))
        self.last_step = int(results["stability_observed_steps"])
        self.last_time_fs = float(observed_time_fs)
