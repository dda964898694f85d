"""Molecular bond graphs from covalent radii, and pair-distance statistics over frame sets.

Numpy only, so that the analysis code (numpy/scipy) and the stability monitor (torch) share one
definition of "bond": atoms i and j are bonded when their distance is below
``scale * (r_cov(Z_i) + r_cov(Z_j))`` with ASE's covalent radii (Cordero et al. 2008) and
``scale = 1.2``. For ethanol this finds the 8 chemical bonds (C-C, C-O, O-H, 5 C-H) and none of
the geminal H-H or 1-3 pairs.
"""

from __future__ import annotations

import numpy as np
from ase.data import covalent_radii

from crmse_cli.errors import DataError

BOND_SCALE = 1.2
"""Multiple of the summed covalent radii under which a pair counts as bonded."""


def pair_distances(positions: np.ndarray) -> np.ndarray:
    """All pair distances of each frame.

    Args:
        positions: (N, 3) or (F, N, 3) Å.

    Returns:
        (N, N) or (F, N, N) Å, symmetric with a zero diagonal.
    """
    x = np.asarray(positions, dtype=np.float64)
    diff = x[..., :, None, :] - x[..., None, :, :]
    out: np.ndarray = np.sqrt(np.sum(diff * diff, axis=-1))
    return out


def _chunks(x: np.ndarray, size: int = 1024) -> list[np.ndarray]:
    """Frame chunks, so that (F, N, N, 3) differences of 100,000 frames never sit in memory."""
    return [x[k : k + size] for k in range(0, x.shape[0], size)]


def _check(species: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(species, dtype=np.int64)
    x = np.asarray(positions, dtype=np.float64)
    if z.ndim != 1 or x.ndim not in (2, 3) or x.shape[-2:] != (z.shape[0], 3):
        raise DataError(
            f"bond graph needs species (N,) and positions (N, 3) or (F, N, 3); got {z.shape} and {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise DataError("bond graph needs finite positions; drop the non-finite frames first")
    if np.any(z <= 0) or np.any(z >= len(covalent_radii)):
        raise DataError("species must be atomic numbers in 1..118")
    return z, x


def bond_graph(species: np.ndarray, positions: np.ndarray, scale: float = BOND_SCALE) -> np.ndarray:
    """Bonded atom pairs from covalent radii.

    Args:
        species: (N,) atomic numbers.
        positions: (N, 3) Å, one reference frame; or (F, N, 3), in which case each pair's mean
            distance over the frames decides (robust to one distorted frame).
        scale: a pair is bonded when its distance < scale * (r_cov_i + r_cov_j).

    Returns:
        (n_bonds, 2) int64, pairs (i, j) with i < j, sorted lexicographically.
    """
    z, x = _check(species, positions)
    if x.ndim == 3:
        dist = sum(pair_distances(c).sum(axis=0) for c in _chunks(x)) / x.shape[0]
    else:
        dist = pair_distances(x)
    radii = covalent_radii[z]
    cutoff = scale * (radii[:, None] + radii[None, :])
    i, j = np.nonzero(np.triu(dist < cutoff, k=1))
    return np.stack([i, j], axis=1).astype(np.int64)


def bond_lengths(positions: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    """Lengths of the given bonds.

    Args:
        positions: (..., N, 3) Å.
        bonds: (n_bonds, 2) atom index pairs.

    Returns:
        (..., n_bonds) Å.
    """
    x = np.asarray(positions, dtype=np.float64)
    b = np.asarray(bonds, dtype=np.int64)
    out: np.ndarray = np.linalg.norm(x[..., b[:, 0], :] - x[..., b[:, 1], :], axis=-1)
    return out


def min_pair_distances(positions: np.ndarray) -> np.ndarray:
    """Each pair's minimum distance over a frame set.

    Args:
        positions: (F, N, 3) Å.

    Returns:
        (N, N) Å, symmetric; the diagonal is +inf so that it never counts as a close pair.
    """
    x = np.asarray(positions, dtype=np.float64)
    if x.ndim != 3 or x.shape[0] == 0:
        raise DataError(f"min_pair_distances needs positions (F, N, 3) with F >= 1, got {x.shape}")
    out: np.ndarray = np.min([pair_distances(c).min(axis=0) for c in _chunks(x)], axis=0)
    np.fill_diagonal(out, np.inf)
    return out
