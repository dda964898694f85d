"""Pair geometry, the radial basis sin(n pi r / r_c) / r and smooth cutoff envelopes.

Every function works on pair tensors of any leading shape (``(E, ...)`` for an edge list,
``(B, N, N, ...)`` for the dense layout), so both layouts share this code.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# Squared distances are clamped to this (Å^2) before the square root: no pair of a molecule is
# ever this close, but the dense layout's diagonal is exactly zero and sqrt'(0) is infinite.
_MIN_D2 = 1e-12


def pair_distances(vectors: Tensor) -> Tensor:
    """(..., 1) lengths r of pair vectors (..., 3) in Å, with r^2 clamped at ``_MIN_D2``."""
    return torch.sqrt((vectors * vectors).sum(-1, keepdim=True).clamp(min=_MIN_D2))


def polynomial_envelope(d: Tensor, p: int) -> Tensor:
    """Polynomial cutoff u(d) of Klicpera et al. (DimeNet), d = r / r_c, without the 1/d factor.

    u(d) = 1 - (p+1)(p+2)/2 d^p + p(p+2) d^(p+1) - p(p+1)/2 d^(p+2) for d < 1, else 0.
    u'(d) = -p(p+1)(p+2)/2 d^(p-1) (1 - d)^2, so u, u' and u'' all vanish at d = 1.

    Args:
        d: reduced distance r / r_c (any shape, >= 0).
        p: exponent, >= 2.

    Returns:
        u(d), same shape. Clamping d at 1 first (instead of ``torch.where``) makes the value
        exactly 0 with an exactly zero gradient beyond the cutoff and cannot overflow, so no NaN
        leaks into the backward pass from pairs that flew far apart.
    """
    d = d.clamp(max=1.0)
    a = -(p + 1) * (p + 2) / 2.0
    b = float(p * (p + 2))
    c = -p * (p + 1) / 2.0
    return 1.0 + d.pow(p) * (a + d * (b + c * d))


def cosine_envelope(d: Tensor) -> Tensor:
    """Cosine cutoff 0.5 (cos(pi d) + 1) for d < 1, else 0 (d = r / r_c)."""
    return 0.5 * (torch.cos(math.pi * d.clamp(max=1.0)) + 1.0)


class RadialBasis(nn.Module):
    """Distances, unit vectors, radial basis and envelope of pair vectors.

    Args:
        n_rbf: number of basis functions sin(n pi r / r_c) / r, n = 1..n_rbf.
        cutoff_A: cutoff radius r_c in Å.
        envelope: "polynomial" or "cosine".
        envelope_p: exponent of the polynomial envelope.
    """

    freq: Tensor

    def __init__(
        self, n_rbf: int, cutoff_A: float, envelope: str = "polynomial", envelope_p: int = 6
    ) -> None:
        super().__init__()
        self.n_rbf = n_rbf
        self.cutoff_A = float(cutoff_A)
        self.envelope = envelope
        self.envelope_p = envelope_p
        # Fixed frequencies n pi / r_c (1/Å); a buffer so .to(dtype) and checkpoints carry it.
        freq = torch.arange(1, n_rbf + 1, dtype=torch.get_default_dtype()) * (math.pi / cutoff_A)
        self.register_buffer("freq", freq)

    def cutoff(self, r: Tensor) -> Tensor:
        """Envelope f_c(r) of distances ``r`` (Å), 1 at r = 0 and 0 from r_c on."""
        d = r / self.cutoff_A
        if self.envelope == "cosine":
            return cosine_envelope(d)
        return polynomial_envelope(d, self.envelope_p)

    def forward(self, vectors: Tensor, keep: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Geometry of pair vectors.

        Args:
            vectors: (..., 3) pair vectors x_sender - x_receiver, Å.
            keep: optional (..., 1) mask, 1 for real pairs and 0 for padding (the dense
                layout's diagonal); padded pairs get a zero envelope and so carry no message.

        Returns:
            unit: (..., 3) unit vectors (zero for a zero vector).
            rbf: (..., n_rbf) sin(n pi r / r_c) / r in 1/Å.
            fc: (..., 1) envelope f_c(r) times ``keep``.
        """
        r, inv_r, unit, fc = self._geometry(vectors, keep)
        rbf = torch.sin(r * self.freq) * inv_r
        return unit, rbf, fc

    def enveloped(self, vectors: Tensor, keep: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Unit vectors and the basis with its envelope and a constant channel folded in.

        Args:
            vectors: (..., 3) pair vectors x_sender - x_receiver, Å.
            keep: optional (..., 1) padding mask, as in ``forward``.

        Returns:
            unit: (..., 3) unit vectors.
            basis: (..., n_rbf + 1) [sin(n pi r / r_c) f_c(r) / r, f_c(r)]: ``forward``'s
            ``cat([rbf, 1]) * fc``, with the envelope applied to the (..., 1) factor 1/r
            instead of the (..., n_rbf + 1) result (one pair-sized product less each way).
        """
        r, inv_r, unit, fc = self._geometry(vectors, keep)
        return unit, torch.cat([torch.sin(r * self.freq) * (fc * inv_r), fc], dim=-1)

    def _geometry(self, vectors: Tensor, keep: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(r, 1/r, unit vectors, envelope times ``keep``) of pair vectors (..., 3)."""
        r = pair_distances(vectors)
        inv_r = 1.0 / r
        fc = self.cutoff(r)
        if keep is not None:
            fc = fc * keep
        return r, inv_r, vectors * inv_r, fc
