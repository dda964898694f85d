"""Distance observables of frame sets: pair distances, h(r), per-pair histograms, support checks.

All functions take frame sets ``positions`` (F, N, 3) in Å and work in frame chunks, so memory
stays bounded (about ``chunk * P`` floats for P pairs) and 10,000 aspirin frames take well under
a second. Histograms count through ``np.bincount`` on uniform bins, which is several times faster
than ``np.histogram``.

h(r) (Fu et al., "Forces are not enough", TMLR 2023): the distribution of all N(N-1)/2
interatomic distances of every frame, as a histogram density on 500 uniform bins over (0, 10] Å.
It is normalised by the number of ALL distances, so ``sum(h * dr) = 1`` whenever every distance
lies in the range (always true for rMD17 molecules, whose largest distance is below 10 Å); for a
sample that flew apart, distances beyond 10 Å are missing mass, which the MAE then counts as error
instead of hiding it by renormalising.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from ase.data import chemical_symbols

from crmse_cli.data.graph import bond_graph, min_pair_distances
from crmse_cli.defaults import COLLAPSE_MARGIN_A
from crmse_cli.errors import DataError
from crmse_cli.sampling.support import SupportTest

HR_BINS = 500
"""Number of h(r) bins (METHOD.md)."""
HR_MAX_A = 10.0
"""Upper end of the h(r) range, Å; the range is (0, HR_MAX_A]."""
PAIR_EDGES_A = np.linspace(0.0, 5.0, 251)
"""Default per-pair histogram edges, Å: 250 bins of 0.02 Å over (0, 5]."""
CHUNK_FRAMES = 2048
"""Frames per chunk in the distance loops."""


def check_frames(positions: np.ndarray, n_atoms: int | None = None, what: str = "positions") -> np.ndarray:
    """Validate a frame set and return it as float64 (F, N, 3).

    Args:
        positions: (F, N, 3) Å, or (N, 3) for a single frame.
        n_atoms: expected N, if known.
        what: name used in the error message.

    Raises:
        DataError: wrong shape, no frames or non-finite coordinates.
    """
    x = np.asarray(positions, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != 3 or x.shape[0] == 0:
        raise DataError(f"{what} must have shape (frames, atoms, 3) with at least one frame, got {x.shape}")
    if n_atoms is not None and x.shape[1] != n_atoms:
        raise DataError(f"{what} has {x.shape[1]} atoms but species has {n_atoms}; pass the same molecule")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{what} contains non-finite coordinates; drop those frames first (finite_frames)")
    return x


def finite_frames(positions: np.ndarray) -> np.ndarray:
    """(F,) bool: frames whose coordinates are all finite (exploded replicas are not)."""
    x = np.asarray(positions, dtype=np.float64)
    out: np.ndarray = np.asarray(np.isfinite(x).all(axis=(-2, -1)))
    return out


def all_pairs(n_atoms: int) -> np.ndarray:
    """(N(N-1)/2, 2) int64: every pair (i, j) with i < j, row-major."""
    i, j = np.triu_indices(n_atoms, k=1)
    return np.stack([i, j], axis=1).astype(np.int64)


def _chunks(x: np.ndarray, size: int = CHUNK_FRAMES) -> Iterator[np.ndarray]:
    for k in range(0, x.shape[0], size):
        yield x[k : k + size]


def frame_pair_distances(positions: np.ndarray, pairs: np.ndarray | None = None) -> np.ndarray:
    """Distances of the given pairs in every frame.

    Args:
        positions: (F, N, 3) Å.
        pairs: (P, 2) atom indices; default all pairs i < j (:func:`all_pairs`).

    Returns:
        (F, P) Å.
    """
    x = check_frames(positions)
    p = all_pairs(x.shape[1]) if pairs is None else np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    out: np.ndarray = np.linalg.norm(x[:, p[:, 0]] - x[:, p[:, 1]], axis=-1)
    return out


def _uniform_counts(values: np.ndarray, lo: float, hi: float, n_bins: int) -> np.ndarray:
    """Counts of ``values`` in ``n_bins`` uniform bins over (lo, hi]; values outside are dropped."""
    v = values.ravel()
    v = v[(v > lo) & (v <= hi)]
    idx = np.minimum(((v - lo) * (n_bins / (hi - lo))).astype(np.int64), n_bins - 1)
    out: np.ndarray = np.bincount(idx, minlength=n_bins)
    return out


def _check_uniform(edges: np.ndarray) -> tuple[float, float, int]:
    e = np.asarray(edges, dtype=np.float64)
    widths = np.diff(e)
    if e.ndim != 1 or e.size < 2 or np.any(widths <= 0) or not np.allclose(widths, widths[0], rtol=1e-6):
        raise DataError("histogram edges must be increasing and uniform, e.g. np.linspace(0, 5, 251)")
    return float(e[0]), float(e[-1]), int(e.size - 1)


def hr_histogram(
    positions: np.ndarray, n_bins: int = HR_BINS, r_max_A: float = HR_MAX_A
) -> tuple[np.ndarray, np.ndarray]:
    """h(r): histogram density of all interatomic distances of a frame set.

    Args:
        positions: (F, N, 3) Å.
        n_bins: number of uniform bins over (0, r_max_A].
        r_max_A: upper end of the range, Å.

    Returns:
        ``(edges (n_bins + 1,) Å, h (n_bins,) 1/Å)``; ``sum(h * diff(edges))`` is the fraction of
        distances inside the range (1 for an intact molecule).
    """
    x = check_frames(positions)
    if n_bins < 1 or r_max_A <= 0:
        raise DataError("h(r) needs n_bins >= 1 and r_max_A > 0")
    pairs = all_pairs(x.shape[1])
    if len(pairs) == 0:
        raise DataError("h(r) needs at least two atoms")
    counts = np.zeros(n_bins, dtype=np.int64)
    for chunk in _chunks(x):
        counts += _uniform_counts(frame_pair_distances(chunk, pairs), 0.0, r_max_A, n_bins)
    edges = np.linspace(0.0, r_max_A, n_bins + 1)
    density = counts / (x.shape[0] * len(pairs) * (r_max_A / n_bins))
    return edges, density


def hr_mae(h_a: np.ndarray, h_b: np.ndarray, edges: np.ndarray) -> float:
    """Integral of |h_a - h_b| dr over the bins (Fu et al. 2023).

    Args:
        h_a: (n_bins,) density, 1/Å, integrating to (at most) 1.
        h_b: (n_bins,) the other density, 1/Å.
        edges: (n_bins + 1,) Å.

    Returns:
        Dimensionless value in [0, 2]: 0 for identical, 2 for disjoint distributions.
    """
    a, b, e = (np.asarray(v, dtype=np.float64) for v in (h_a, h_b, edges))
    if a.shape != b.shape or a.ndim != 1 or e.shape != (a.size + 1,):
        raise DataError(
            f"hr_mae needs two (n,) densities and (n + 1,) edges, got {a.shape}, {b.shape}, {e.shape}"
        )
    return float(np.sum(np.abs(a - b) * np.diff(e)))


def pair_histograms(positions: np.ndarray, pairs: np.ndarray, edges: np.ndarray = PAIR_EDGES_A) -> np.ndarray:
    """Distance histogram density of each chosen pair, on shared uniform edges.

    Args:
        positions: (F, N, 3) Å.
        pairs: (P, 2) atom indices.
        edges: (n_bins + 1,) uniform edges, Å; distances outside are missing mass.

    Returns:
        (P, n_bins) 1/Å; row p integrates to the fraction of frames whose pair p lies in range.
    """
    x = check_frames(positions)
    p = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    lo, hi, n_bins = _check_uniform(edges)
    # One bincount for all pairs: pair k's bins are offset by k * n_bins.
    offset = (np.arange(len(p)) * n_bins)[None, :]
    counts = np.zeros(len(p) * n_bins, dtype=np.int64)
    for chunk in _chunks(x):
        d = frame_pair_distances(chunk, p)  # (f, P)
        inside = (d > lo) & (d <= hi)
        idx = np.minimum(((d - lo) * (n_bins / (hi - lo))).astype(np.int64), n_bins - 1) + offset
        counts += np.bincount(idx[inside], minlength=len(counts))
    out: np.ndarray = counts.reshape(len(p), n_bins) / (x.shape[0] * (hi - lo) / n_bins)
    return out


def atom_label(species: np.ndarray, index: int) -> str:
    """Element symbol and index, e.g. ``"C0"`` or ``"H8"``."""
    return f"{chemical_symbols[int(species[index])]}{index}"


def geminal_hh_pairs(species: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    """H-H pairs whose two hydrogens are bonded to the same heavy atom (e.g. the H of a methyl).

    Args:
        species: (N,) atomic numbers.
        bonds: (n_bonds, 2) bonded pairs.

    Returns:
        (G, 2) int64 pairs (i, j), i < j, sorted.
    """
    z = np.asarray(species, dtype=np.int64)
    out: set[tuple[int, int]] = set()
    for heavy in np.flatnonzero(z > 1):
        nbrs = np.concatenate([bonds[bonds[:, 0] == heavy, 1], bonds[bonds[:, 1] == heavy, 0]])
        hs = np.sort(nbrs[z[nbrs] == 1])
        out.update((int(a), int(b)) for ia, a in enumerate(hs) for b in hs[ia + 1 :])
    return np.array(sorted(out), dtype=np.int64).reshape(-1, 2)


def pairs_that_matter(species: np.ndarray, ref_positions: np.ndarray) -> dict[str, tuple[int, int]]:
    """The pairs whose distance histograms are compared: every bond, then the geminal H-H pairs.

    The bond graph comes from the reference frames (mean distances, covalent radii x 1.2,
    :func:`crmse_cli.data.graph.bond_graph`). Geminal H-H pairs are the ones that collapse in the
    spurious minima of MSE-trained ethanol models (METHOD.md, first trial).

    Args:
        species: (N,) atomic numbers.
        ref_positions: (F, N, 3) or (N, 3) Å, reference (DFT) frames.

    Returns:
        Ordered dict label -> (i, j), labels like ``"C0-H3"`` (element + atom index).
    """
    z = np.asarray(species, dtype=np.int64)
    bonds = bond_graph(z, ref_positions)
    out: dict[str, tuple[int, int]] = {}
    for i, j in [*bonds.tolist(), *geminal_hh_pairs(z, bonds).tolist()]:
        out[f"{atom_label(z, i)}-{atom_label(z, j)}"] = (int(i), int(j))
    return out


def min_pair_distance_per_frame(positions: np.ndarray, pairs: np.ndarray | None = None) -> np.ndarray:
    """(F,) Å: the closest pair distance in each frame (of ``pairs`` (P, 2) when given; else all)."""
    x = check_frames(positions)
    out: np.ndarray = np.concatenate([frame_pair_distances(c, pairs).min(axis=1) for c in _chunks(x)])
    return out


def outside_support(
    positions: np.ndarray, ref_positions: np.ndarray, margin_A: float = COLLAPSE_MARGIN_A
) -> np.ndarray:
    """(F,) bool: frames where some pair comes closer than its reference minimum minus ``margin_A``.

    The numpy face of :class:`crmse_cli.sampling.support.SupportTest`, the stability monitor's
    collapse test (METHOD.md, "Stability"): each pair (i, j) has its own floor, the minimum of
    d_ij over the reference frames minus ``margin_A``. Distances are taken in float64
    (:func:`frame_pair_distances`).

    Args:
        positions: (F, N, 3) Å, frames to test.
        ref_positions: (F_ref, N, 3) Å, reference (DFT) frames.
        margin_A: allowed approach below the reference minimum, Å.
    """
    ref = check_frames(ref_positions, what="reference positions")
    x = check_frames(positions, n_atoms=ref.shape[1])
    test = SupportTest(torch.from_numpy(min_pair_distances(ref)), margin_A)
    flags = [test.below(torch.from_numpy(frame_pair_distances(c))).numpy() for c in _chunks(x)]
    out: np.ndarray = np.concatenate(flags)
    return out
