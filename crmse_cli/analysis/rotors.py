"""Rotatable bonds of any molecule, each with its torsion set, named by its atoms.

Ethanol and aspirin have named torsions (:mod:`crmse_cli.analysis.dihedrals`); every molecule
(malonaldehyde, toluene, a user's xyz) gets one torsion set per rotatable bond of the reference
bond graph, so the distribution metrics profile its dihedrals too.
"""

from __future__ import annotations

import numpy as np
from ase.data import chemical_symbols

from crmse_cli.analysis.dihedrals import named_dihedral_sets, neighbours, ring_bonds
from crmse_cli.data.graph import bond_graph


def _outer(z: np.ndarray, nbrs: list[list[int]], end: int, other: int) -> list[int]:
    """Outer atoms of a rotor end.

    Its lowest-index heavy neighbour, or all its H when it has no other heavy neighbour (the
    equivalent H of a methyl, amine or hydroxyl group, pooled).
    """
    rest = [j for j in nbrs[end] if j != other]
    heavy = [j for j in rest if z[j] > 1]
    return heavy[:1] if heavy else rest


def atom_label(z: np.ndarray, i: int) -> str:
    """Element symbol and index, e.g. ``O2``."""
    return f"{chemical_symbols[int(z[i])]}{i}"


def _bond_angle_deg(x: np.ndarray, a: int, b: int, c: int) -> float:
    u, v = x[..., a, :] - x[..., b, :], x[..., c, :] - x[..., b, :]
    cos = np.sum(u * v, axis=-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    return float(np.degrees(np.arccos(np.clip(np.mean(cos), -1.0, 1.0))))


def rotor_dihedral_sets(species: np.ndarray, positions_ref: np.ndarray) -> dict[str, np.ndarray]:
    """One torsion set per rotatable bond of the reference bond graph, named by its atoms.

    A rotatable bond is a bond that is on no ring and joins two non-terminal atoms (each with at
    least one other neighbour). Bonds to terminal atoms (C-H, C=O) cannot rotate anything; the
    bond to a heavy atom that carries only hydrogens is a rotor (hydroxyl O-H, methyl C-H3,
    amine N-H2 groups turn about it). Bond orders are unknown to the graph, so double bonds
    outside rings count as rotors too (their profile is then one narrow well).

    Each end contributes its lowest-index heavy neighbour, or all its H when it has no other
    heavy neighbour; the set is every combination (three pooled torsions for a methyl, as for
    ethanol's named ``methyl``). The end whose outer atoms are H comes first, so the name reads
    along the rotating hydrogen (``H8-O2-C1-C0``). Torsions with a near-linear bond angle
    (> 170 degrees in the reference mean) are skipped: their dihedral is undefined.

    Args:
        species: (N,) atomic numbers.
        positions_ref: (F, N, 3) or (N, 3) Å, reference frames for the bond graph.

    Returns:
        ``"<El><i>-<El><j>-<El><k>-<El><l>"`` -> (Q, 4) int64, in bond order.
    """
    z = np.asarray(species, dtype=np.int64)
    x = np.asarray(positions_ref, dtype=np.float64)
    bonds = bond_graph(z, x)
    nbrs = neighbours(bonds, len(z))
    rings = ring_bonds(bonds, len(z))
    out: dict[str, np.ndarray] = {}
    for b, c in sorted((min(i, j), max(i, j)) for i, j in bonds.tolist()):
        if (b, c) in rings or len(nbrs[b]) < 2 or len(nbrs[c]) < 2:
            continue
        outer_b, outer_c = _outer(z, nbrs, b, c), _outer(z, nbrs, c, b)
        if all(z[j] == 1 for j in outer_c) and not all(z[j] == 1 for j in outer_b):
            b, c, outer_b, outer_c = c, b, outer_c, outer_b
        if max(_bond_angle_deg(x, outer_b[0], b, c), _bond_angle_deg(x, b, c, outer_c[0])) > 170.0:
            continue
        quads = np.array([[a, b, c, d] for a in outer_b for d in outer_c], dtype=np.int64)
        out["-".join(atom_label(z, i) for i in quads[0])] = quads
    return out


def dihedral_sets(species: np.ndarray, positions_ref: np.ndarray) -> dict[str, np.ndarray]:
    """The torsions the distribution metrics profile: the named ones, then every other rotor.

    Ethanol's ``hydroxyl``/``methyl`` and aspirin's ``ester``/``carboxylic_acid`` keep their
    names (:func:`named_dihedral_sets`); every rotatable bond they do not cover gets its set from
    :func:`rotor_dihedral_sets`, named by its atoms. A molecule without rotors gets none.
    """
    named = named_dihedral_sets(species, positions_ref)
    covered = {frozenset((int(q[1]), int(q[2]))) for quads in named.values() for q in quads}
    rotors = {
        name: quads
        for name, quads in rotor_dihedral_sets(species, positions_ref).items()
        if frozenset((int(quads[0, 1]), int(quads[0, 2]))) not in covered
    }
    return {**named, **rotors}
