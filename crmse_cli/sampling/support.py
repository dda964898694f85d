"""The "outside the DFT support" test, written once (METHOD.md, "Stability").

A state is outside the support of the DFT reference when some atom pair (i, j) comes closer than
its own floor: the pair's minimum distance over the reference frames minus a margin. The stability
monitor calls such a replica collapsed, the CRMSE trainer reports the share of its persistent
chains outside, and the evaluation reports the share of sampled frames outside
(:func:`crmse_cli.analysis.observables.outside_support`, the numpy face of this test).
"""

from __future__ import annotations

import torch


class SupportTest:
    """Each atom pair's floor, and the test of frames against it.

    Args:
        pair_min_A: (N, N) Å, each pair's minimum distance over the reference frames (e.g.
            :func:`crmse_cli.data.graph.min_pair_distances`); the floors keep its dtype and device.
        margin_A: allowed approach below a pair's reference minimum, Å.
    """

    def __init__(self, pair_min_A: torch.Tensor, margin_A: float) -> None:
        n = pair_min_A.shape[0]
        self.pairs = torch.triu_indices(n, n, offset=1, device=pair_min_A.device)
        """(2, P) every pair i < j, row-major."""
        self.floor_A = pair_min_A[self.pairs[0], self.pairs[1]] - margin_A
        """(P,) Å, each pair's reference minimum minus the margin."""

    def distances(self, positions: torch.Tensor) -> torch.Tensor:
        """(B, P) Å: the distance of every pair of :attr:`pairs` in frames (B, N, 3) Å, in their dtype."""
        p = self.pairs.to(positions.device)
        out: torch.Tensor = (positions[:, p[0]] - positions[:, p[1]]).norm(dim=-1)
        return out

    def below(self, distances: torch.Tensor) -> torch.Tensor:
        """(B,) bool: frames with some pair closer than its floor.

        Args:
            distances: (B, P) Å, the pairs of :attr:`pairs` in their order (row-major i < j, as
                :meth:`distances` and :func:`crmse_cli.analysis.observables.frame_pair_distances`
                give them).
        """
        return (distances < self.floor_A.to(distances.device, distances.dtype)).any(dim=1)

    def outside(self, positions: torch.Tensor) -> torch.Tensor:
        """(B,) bool: frames (B, N, 3) Å where some pair comes closer than its floor."""
        return self.below(self.distances(positions))
