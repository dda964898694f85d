"""Dihedral angles found from the bond graph, and their free-energy profiles.

Sign convention (IUPAC): the dihedral a-b-c-d is positive when, looking along b -> c, the bond
a-b must turn clockwise (by less than 180 degrees) to eclipse c-d. Angles lie in (-180, 180]
degrees. The atoms of every torsion come from the bond graph of the reference frames
(:func:`crmse_cli.data.graph.bond_graph`), never from hard-coded indices.

Named torsions (METHOD.md, "Observables and metrics": ethanol's ``hydroxyl`` and ``methyl``,
aspirin's ``ester`` and ``carboxylic_acid``...) are rotors of
:func:`crmse_cli.analysis.rotors.rotor_dihedral_sets` that match a chemistry pattern of
:mod:`crmse_cli.analysis.rotor_patterns` (:func:`crmse_cli.analysis.rotors.named_dihedral_sets`).

Free energy: F(phi) = -kT ln p(phi), shifted to min 0, on periodic bins (default 36 of 10
degrees, the first starting at -180); bins never visited have F = +inf.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

import numpy as np
from ase.data import chemical_symbols
from scipy.special import rel_entr

from crmse_cli.errors import DataError
from crmse_cli.units import kT

DIHEDRAL_BINS = 36
"""Default number of periodic bins over 360 degrees (10 degrees each)."""


def dihedral_angles(positions: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """Dihedral angles a-b-c-d of every frame, vectorised over frames and torsions.

    phi = atan2(|b2| b1 . (b2 x b3), (b1 x b2) . (b2 x b3)) with b1 = x_b - x_a, b2 = x_c - x_b,
    b3 = x_d - x_c (Blondel & Karplus, J. Comput. Chem. 17, 1132 (1996)); it has no arccos and
    stays accurate near 0 and 180 degrees.

    Args:
        positions: (..., N, 3) Å, e.g. (F, N, 3).
        quads: (Q, 4) atom indices.

    Returns:
        (..., Q) degrees in (-180, 180].
    """
    x = np.asarray(positions, dtype=np.float64)
    q = np.asarray(quads, dtype=np.int64).reshape(-1, 4)
    if x.ndim < 2 or x.shape[-1] != 3:
        raise DataError(f"dihedral_angles needs positions (..., atoms, 3), got {x.shape}")
    if q.size and (q.min() < 0 or q.max() >= x.shape[-2]):
        raise DataError(f"dihedral atom indices must lie in 0..{x.shape[-2] - 1}")
    b1 = x[..., q[:, 1], :] - x[..., q[:, 0], :]
    b2 = x[..., q[:, 2], :] - x[..., q[:, 1], :]
    b3 = x[..., q[:, 3], :] - x[..., q[:, 2], :]
    n2 = np.cross(b2, b3)
    y = np.linalg.norm(b2, axis=-1) * np.sum(b1 * n2, axis=-1)
    phi = np.degrees(np.arctan2(y, np.sum(np.cross(b1, b2) * n2, axis=-1)))
    out: np.ndarray = np.where(phi <= -180.0, phi + 360.0, phi)
    return out


def neighbours(bonds: np.ndarray, n_atoms: int) -> list[list[int]]:
    """Sorted neighbour lists from a (n_bonds, 2) bond array."""
    nbrs: list[list[int]] = [[] for _ in range(n_atoms)]
    for i, j in np.asarray(bonds, dtype=np.int64).reshape(-1, 2).tolist():
        nbrs[i].append(j)
        nbrs[j].append(i)
    return [sorted(v) for v in nbrs]


def proper_dihedrals(bonds: np.ndarray, n_atoms: int) -> np.ndarray:
    """Every proper torsion a-b-c-d along bond paths, each once (b < c).

    Args:
        bonds: (n_bonds, 2) bonded pairs.
        n_atoms: N.

    Returns:
        (Q, 4) int64, sorted rows; a, b, c, d distinct (three-membered rings give none).
    """
    nbrs = neighbours(bonds, n_atoms)
    out = [
        (a, b, c, d)
        for b in range(n_atoms)
        for c in nbrs[b]
        if b < c
        for a in nbrs[b]
        if a != c
        for d in nbrs[c]
        if d not in (a, b)
    ]
    return np.array(sorted(out), dtype=np.int64).reshape(-1, 4)


def ring_atoms(bonds: np.ndarray, n_atoms: int) -> set[int]:
    """Atoms on some cycle: both ends of a bond that stays connected when the bond is removed."""
    return {atom for bond in ring_bonds(bonds, n_atoms) for atom in bond}


def ring_bonds(bonds: np.ndarray, n_atoms: int) -> set[tuple[int, int]]:
    """Bonds on some cycle (i < j): those whose ends stay connected when the bond is removed.

    Unlike :func:`ring_atoms`, a bond between two ring atoms that is not itself in a ring (the
    bond between the rings of biphenyl) is not a ring bond.
    """
    nbrs = neighbours(bonds, n_atoms)
    out: set[tuple[int, int]] = set()
    for u, v in np.asarray(bonds, dtype=np.int64).reshape(-1, 2).tolist():
        seen, stack = {u}, [u]
        while stack and v not in seen:
            w = stack.pop()
            for t in nbrs[w]:
                if t not in seen and not (w == u and t == v):
                    seen.add(t)
                    stack.append(t)
        if v in seen:
            out.add((min(u, v), max(u, v)))
    return out


def hill_formula(species: np.ndarray) -> str:
    """Hill formula, e.g. ``C2H6O`` for ethanol, ``C9H8O4`` for aspirin."""
    counts = Counter(chemical_symbols[int(z)] for z in np.asarray(species).ravel())
    order = ["C", "H"] if "C" in counts else []
    order += sorted(s for s in counts if s not in order)
    return "".join(f"{s}{counts[s] if counts[s] > 1 else ''}" for s in order)


class Profile(NamedTuple):
    """A dihedral distribution on periodic bins.

    Attributes:
        edges: (n_bins + 1,) degrees, from -180 to 180.
        prob: (n_bins,) probability per bin (sums to 1).
        free_energy: (n_bins,) kcal/mol, -kT ln prob shifted to min 0; +inf where prob = 0.
    """

    edges: np.ndarray
    prob: np.ndarray
    free_energy: np.ndarray


def _periodic_index(phi_deg: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of angles on n_bins periodic bins starting at -180 (180 falls in bin 0, as -180)."""
    shifted = np.mod(np.asarray(phi_deg, dtype=np.float64).ravel() + 180.0, 360.0)
    out: np.ndarray = np.minimum((shifted * (n_bins / 360.0)).astype(np.int64), n_bins - 1)
    return out


def free_energy_profile(phi_deg: np.ndarray, temperature_K: float, n_bins: int = DIHEDRAL_BINS) -> Profile:
    """F(phi) = -kT ln p(phi), shifted to min 0, on periodic bins.

    Args:
        phi_deg: angles in degrees, any shape (e.g. (F,) or (F, Q) for a pooled equivalent set).
        temperature_K: temperature of kT, K.
        n_bins: number of bins over 360 degrees.

    Returns:
        :class:`Profile`; the bin probabilities do not depend on the temperature.
    """
    phi = np.asarray(phi_deg, dtype=np.float64).ravel()
    phi = phi[np.isfinite(phi)]
    if phi.size == 0 or n_bins < 1 or temperature_K <= 0:
        raise DataError("a free-energy profile needs finite angles, n_bins >= 1 and temperature_K > 0")
    prob = np.bincount(_periodic_index(phi, n_bins), minlength=n_bins) / phi.size
    with np.errstate(divide="ignore"):
        f = -kT(temperature_K) * np.log(prob)
    return Profile(np.linspace(-180.0, 180.0, n_bins + 1), prob, f - f.min())


def profile_error(f_a: np.ndarray, f_b: np.ndarray) -> float:
    """Mean |F_a - F_b| over bins populated in both profiles, kcal/mol (NaN if none is)."""
    a, b = np.asarray(f_a, dtype=np.float64), np.asarray(f_b, dtype=np.float64)
    if a.shape != b.shape:
        raise DataError(f"profiles must have the same bins, got {a.shape} and {b.shape}")
    both = np.isfinite(a) & np.isfinite(b)
    return float(np.mean(np.abs(a[both] - b[both]))) if both.any() else float("nan")


def js_divergence(p_a: np.ndarray, p_b: np.ndarray) -> float:
    """Jensen-Shannon divergence of two binned distributions, natural log: in [0, ln 2].

    JS = KL(p || m) / 2 + KL(q || m) / 2 with m = (p + q) / 2. Inputs are renormalised to sum 1.
    This is the divergence itself, not its square root (the distance SciPy's jensenshannon gives).
    """
    p, q = np.asarray(p_a, dtype=np.float64), np.asarray(p_b, dtype=np.float64)
    if p.shape != q.shape or np.any(p < 0) or np.any(q < 0) or p.sum() <= 0 or q.sum() <= 0:
        raise DataError("js_divergence needs two non-negative, non-empty histograms of the same shape")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)
    return float(0.5 * rel_entr(p, m).sum() + 0.5 * rel_entr(q, m).sum())


def dihedral_density_2d(
    phi_a: np.ndarray, phi_b: np.ndarray, n_bins: int = DIHEDRAL_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Joint density of two torsions on periodic bins (a Ramachandran-style map).

    Args:
        phi_a: (F,) or (F, Qa) degrees; a pooled equivalent set pairs each of its Qa angles with
            each of phi_b's in the same frame.
        phi_b: (F,) or (F, Qb) degrees.
        n_bins: bins per axis over 360 degrees.

    Returns:
        ``(edges (n_bins + 1,) degrees, density (n_bins, n_bins) 1/degree^2)``, indexed
        [bin of phi_a, bin of phi_b]; it integrates to 1.
    """
    a = np.asarray(phi_a, dtype=np.float64)
    b = np.asarray(phi_b, dtype=np.float64)
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    if a.shape[0] != b.shape[0] or a.shape[0] == 0:
        raise DataError(f"2D dihedral density needs angles of the same frames, got {a.shape} and {b.shape}")
    ia = _periodic_index(np.repeat(a, b.shape[1], axis=1), n_bins)
    ib = _periodic_index(np.tile(b, (1, a.shape[1])), n_bins)
    counts = np.bincount(ia * n_bins + ib, minlength=n_bins * n_bins).reshape(n_bins, n_bins)
    width = 360.0 / n_bins
    return np.linspace(-180.0, 180.0, n_bins + 1), counts / (counts.sum() * width * width)
