"""Rotatable bonds of any molecule, each with its torsion set, named by its atoms.

Every molecule (ethanol, aspirin, malonaldehyde, toluene, a user's xyz) gets one torsion set per
rotatable bond of the reference bond graph, so the distribution metrics profile its dihedrals.
A rotor that matches a chemistry pattern (:mod:`crmse_cli.analysis.rotor_patterns`: ethanol's
hydroxyl and methyl, aspirin's ester and carboxylic acid...) takes its name; the others are
named by their atoms.
"""

from __future__ import annotations

import numpy as np
from ase.data import chemical_symbols

from crmse_cli.analysis.dihedrals import neighbours, ring_bonds
from crmse_cli.analysis.rotor_patterns import Graph, label_rotors
from crmse_cli.data.graph import bond_graph


def _outer(z: np.ndarray, nbrs: list[list[int]], end: int, other: int) -> list[int]:
    """Outer atoms of a rotor end.

    One heavy neighbour: the most substituted one (most heavy neighbours of its own, then most
    neighbours, then the lowest index), so a ring end reads along the ortho carbon that bears
    the other substituent and an acid C along its O-H rather than its C=O. All its H when it has
    no other heavy neighbour (the equivalent H of a methyl, amine or hydroxyl group, pooled).
    """
    rest = [j for j in nbrs[end] if j != other]
    heavy = [j for j in rest if z[j] > 1]
    if not heavy:
        return rest

    def rank(j: int) -> tuple[int, int, int]:
        return (-sum(int(z[k] > 1) for k in nbrs[j] if k != end), -len(nbrs[j]), j)

    return [min(heavy, key=rank)]


def atom_label(z: np.ndarray, i: int) -> str:
    """Element symbol and index, e.g. ``O2``."""
    return f"{chemical_symbols[int(z[i])]}{i}"


def _bond_angle_deg(x: np.ndarray, a: int, b: int, c: int) -> float:
    u, v = x[..., a, :] - x[..., b, :], x[..., c, :] - x[..., b, :]
    cos = np.sum(u * v, axis=-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    return float(np.degrees(np.arccos(np.clip(np.mean(cos), -1.0, 1.0))))


def _rotors(z: np.ndarray, x: np.ndarray) -> tuple[Graph, dict[tuple[int, int], np.ndarray]]:
    """The bond graph and every rotatable bond (b, c) with its (Q, 4) torsions, in bond order."""
    bonds = bond_graph(z, x)
    nbrs = neighbours(bonds, len(z))
    rings = ring_bonds(bonds, len(z))
    graph = Graph(z, nbrs, {atom for bond in rings for atom in bond})
    out: dict[tuple[int, int], np.ndarray] = {}
    for b, c in sorted((min(i, j), max(i, j)) for i, j in bonds.tolist()):
        if (b, c) in rings or len(nbrs[b]) < 2 or len(nbrs[c]) < 2:
            continue
        outer_b, outer_c = _outer(z, nbrs, b, c), _outer(z, nbrs, c, b)
        if all(z[j] == 1 for j in outer_c) and not all(z[j] == 1 for j in outer_b):
            b, c, outer_b, outer_c = c, b, outer_c, outer_b
        if max(_bond_angle_deg(x, outer_b[0], b, c), _bond_angle_deg(x, b, c, outer_c[0])) > 170.0:
            continue
        out[(b, c)] = np.array([[a, b, c, d] for a in outer_b for d in outer_c], dtype=np.int64)
    return graph, out


def rotor_dihedral_sets(species: np.ndarray, positions_ref: np.ndarray) -> dict[str, np.ndarray]:
    """One torsion set per rotatable bond of the reference bond graph, named by its atoms.

    A rotatable bond is a bond that is on no ring and joins two non-terminal atoms (each with at
    least one other neighbour). Bonds to terminal atoms (C-H, C=O) cannot rotate anything; the
    bond to a heavy atom that carries only hydrogens is a rotor (hydroxyl O-H, methyl C-H3,
    amine N-H2 groups turn about it). Bond orders are unknown to the graph, so double bonds
    outside rings count as rotors too (their profile is then one narrow well).

    Each end contributes its most substituted heavy neighbour (:func:`_outer`), or all its H
    when it has no other heavy neighbour; the set is every combination (three pooled torsions
    for a methyl, as for ethanol's ``methyl``). The end whose outer atoms are H comes first, so
    the name reads along the rotating hydrogen (``H8-O2-C1-C0``). Torsions with a near-linear
    bond angle (> 170 degrees in the reference mean) are skipped: their dihedral is undefined.

    Args:
        species: (N,) atomic numbers.
        positions_ref: (F, N, 3) or (N, 3) Å, reference frames for the bond graph.

    Returns:
        ``"<El><i>-<El><j>-<El><k>-<El><l>"`` -> (Q, 4) int64, in bond order.
    """
    z = np.asarray(species, dtype=np.int64)
    _, rotors = _rotors(z, np.asarray(positions_ref, dtype=np.float64))
    return {"-".join(atom_label(z, i) for i in quads[0]): quads for quads in rotors.values()}


def _named_and_rest(
    species: np.ndarray, positions_ref: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(the rotors with a chemistry name, read from the pattern's first atom; the others by atom names)."""
    z = np.asarray(species, dtype=np.int64)
    graph, rotors = _rotors(z, np.asarray(positions_ref, dtype=np.float64))
    labels = label_rotors(graph, list(rotors))
    by_bond = {frozenset(k): v for k, v in rotors.items()}
    # A reversed torsion d-c-b-a has the same angle as a-b-c-d: read each from the pattern's b.
    named = {}
    for name, (b, c) in labels.items():
        quads = by_bond[frozenset((b, c))]
        named[name] = quads if quads[0, 1] == b else quads[:, ::-1].copy()
    covered = {frozenset(bc) for bc in labels.values()}
    rest = {
        "-".join(atom_label(z, i) for i in quads[0]): quads
        for bond, quads in rotors.items()
        if frozenset(bond) not in covered
    }
    return named, rest


def named_dihedral_sets(species: np.ndarray, positions_ref: np.ndarray) -> dict[str, np.ndarray]:
    """The rotors that have a chemistry name (:data:`~crmse_cli.analysis.rotor_patterns.ROTOR_PATTERNS`).

    Ethanol's ``hydroxyl`` H-O-C-C and ``methyl`` H-C-C-O (its three H pooled); aspirin's
    ``ester`` C-C(ring)-O-C(=O) and ``carboxylic_acid`` C-C(ring)-C(=O)-O(H) (the outer ring atom
    is the ortho carbon bearing the other substituent), ``acid_hydroxyl``, ``ester_acyl`` and
    ``acetyl_methyl``; any molecule whose rotors match a pattern once.

    Args:
        species: (N,) atomic numbers.
        positions_ref: (F, N, 3) or (N, 3) Å, reference frames for the bond graph.

    Returns:
        name -> (Q, 4) int64 quadruples read from the pattern's first atom, in pattern order;
        empty for a molecule without named rotors.
    """
    return _named_and_rest(species, positions_ref)[0]


def named_dihedrals(species: np.ndarray, positions_ref: np.ndarray) -> dict[str, tuple[int, int, int, int]]:
    """One canonical quadruple (i, j, k, l) per named torsion (the first of each equivalent set)."""
    return {
        name: (int(q[0, 0]), int(q[0, 1]), int(q[0, 2]), int(q[0, 3]))
        for name, q in named_dihedral_sets(species, positions_ref).items()
    }


def dihedral_sets(species: np.ndarray, positions_ref: np.ndarray) -> dict[str, np.ndarray]:
    """The torsions the distribution metrics profile: the named ones, then every other rotor.

    Rotors with a chemistry name (:func:`named_dihedral_sets`: ethanol's ``hydroxyl``/``methyl``,
    aspirin's ``ester``/``carboxylic_acid``/``acid_hydroxyl``/``ester_acyl``/``acetyl_methyl``)
    come first; every other rotatable bond is named by its atoms. A molecule without rotors gets
    none.
    """
    named, rest = _named_and_rest(species, positions_ref)
    return {**named, **rest}
