"""Chemistry names of rotatable bonds: SMARTS-like patterns on the bond graph.

A rotor found by :func:`crmse_cli.analysis.rotors.rotor_dihedral_sets` is a bond b-c. It gets a
chemistry name when exactly one rotor of the molecule matches one of :data:`ROTOR_PATTERNS`:
each end is described by its element and connectivity in the reference bond graph (bonded H,
bonded heavy atoms, total neighbours, ring membership, and neighbours that must be present),
which is what a SMARTS atom expression says about a graph without bond orders. No RDKit: the
bond graph (:func:`crmse_cli.data.graph.bond_graph`) has no bond orders, so a carbonyl O is a
terminal O (one neighbour) and an aromatic C is a C on a ring.

The names are ethanol's ``hydroxyl`` and ``methyl`` and aspirin's ``ester`` and
``carboxylic_acid`` (METHOD.md), and aspirin's other rotors ``acid_hydroxyl``, ``ester_acyl``
and ``acetyl_methyl``. A pattern that matches several rotors of one molecule (the two methyls of
butane) names none of them: the atom names stay, so a name always means one torsion.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from ase.data import atomic_numbers


@dataclass(frozen=True)
class AtomPattern:
    """One atom of a pattern: element and connectivity (None: any).

    Attributes:
        element: element symbol.
        hydrogens: bonded H atoms (SMARTS ``H<n>``).
        heavy: bonded heavy atoms, the rotor partner included (SMARTS ``D<n>`` counting heavy atoms).
        degree: all bonded atoms (SMARTS ``X<n>``).
        ring: on a ring (SMARTS ``R``) or not (``!R``).
        bonded: patterns that distinct neighbours (the rotor partner excluded) must match.
    """

    element: str
    hydrogens: int | None = None
    heavy: int | None = None
    degree: int | None = None
    ring: bool | None = None
    bonded: tuple[AtomPattern, ...] = ()


@dataclass(frozen=True)
class RotorPattern:
    """A named rotor: the bond ``b``-``c``, the torsion read from ``b`` to ``c``.

    Attributes:
        name: the torsion's name in metrics and the report.
        smarts: the pattern in SMARTS-like notation (documentation; the match uses ``b`` and ``c``).
        b, c: the two ends of the bond.
    """

    name: str
    smarts: str
    b: AtomPattern
    c: AtomPattern


CARBONYL_O = AtomPattern("O", degree=1)
"""A terminal O on C: the C=O of a carbonyl (the graph has no bond orders)."""
HYDROXYL_O = AtomPattern("O", hydrogens=1, heavy=1)
ACYL_C = AtomPattern("C", ring=False, bonded=(CARBONYL_O,))
"""A C that bears a carbonyl O: the acyl C of an ester, the C of an acid."""

ROTOR_PATTERNS: tuple[RotorPattern, ...] = (
    RotorPattern("hydroxyl", "[OX2H1]-[CX4]", HYDROXYL_O, AtomPattern("C", degree=4)),
    RotorPattern(
        "methyl", "[CH3]-[CX4;!R]", AtomPattern("C", hydrogens=3), AtomPattern("C", degree=4, ring=False)
    ),
    RotorPattern(
        "ester",
        "[C;R]-[OX2H0]-C(=O)",
        AtomPattern("C", ring=True),
        AtomPattern("O", hydrogens=0, heavy=2, bonded=(ACYL_C,)),
    ),
    RotorPattern(
        "carboxylic_acid",
        "[C;R]-C(=O)[OH]",
        AtomPattern("C", ring=True),
        AtomPattern("C", ring=False, bonded=(CARBONYL_O, HYDROXYL_O)),
    ),
    RotorPattern("acid_hydroxyl", "[OX2H1]-C(=O)", HYDROXYL_O, ACYL_C),
    RotorPattern(
        "ester_acyl",
        "[OX2H0](C)-C(=O)",
        AtomPattern("O", hydrogens=0, heavy=2, ring=False),
        ACYL_C,
    ),
    RotorPattern("acetyl_methyl", "[CH3]-C(=O)", AtomPattern("C", hydrogens=3), ACYL_C),
)
"""Named rotors, in the order the metrics and the report list them."""


class Graph:
    """The bond graph's atoms as patterns see them: element, neighbours, ring membership."""

    def __init__(self, species: np.ndarray, nbrs: list[list[int]], ring: set[int]) -> None:
        self.z = np.asarray(species, dtype=np.int64)
        self.nbrs = nbrs
        self.ring = ring

    def matches(self, pat: AtomPattern, i: int, partner: int | None) -> bool:
        """Whether atom ``i`` matches ``pat``; its rotor partner ``partner`` is no candidate neighbour."""
        z, nb = self.z, self.nbrs[i]
        n_h = sum(int(z[j] == 1) for j in nb)
        checks = (
            (pat.hydrogens, n_h),
            (pat.heavy, len(nb) - n_h),
            (pat.degree, len(nb)),
        )
        if z[i] != atomic_numbers[pat.element]:
            return False
        if any(want is not None and want != got for want, got in checks):
            return False
        if pat.ring is not None and (i in self.ring) != pat.ring:
            return False
        others = [j for j in nb if j != partner]
        return any(
            all(self.matches(p, j, i) for p, j in zip(pat.bonded, chosen, strict=True))
            for chosen in itertools.permutations(others, len(pat.bonded))
        )


def label_rotors(graph: Graph, bonds: list[tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """Chemistry names of rotor bonds: name -> (b, c) oriented as the pattern reads.

    Args:
        graph: the molecule's bond graph.
        bonds: the rotatable bonds (i, j), any orientation.

    Returns:
        One entry per pattern that matches exactly one of ``bonds`` (in :data:`ROTOR_PATTERNS`
        order); a bond takes the first pattern it matches.
    """
    out: dict[str, tuple[int, int]] = {}
    taken: set[frozenset[int]] = set()
    for pat in ROTOR_PATTERNS:
        hits = [
            (b, c)
            for i, j in bonds
            for b, c in ((i, j), (j, i))
            if frozenset((b, c)) not in taken and graph.matches(pat.b, b, c) and graph.matches(pat.c, c, b)
        ]
        if len({frozenset(h) for h in hits}) == 1:
            out[pat.name] = hits[0]
            taken.add(frozenset(hits[0]))
    return out
