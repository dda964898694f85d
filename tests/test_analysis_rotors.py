"""Every rotatable bond of any molecule gets a torsion set named by its atoms."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from crmse_cli.analysis.metrics import distribution_metrics
from crmse_cli.analysis.rotors import dihedral_sets, named_dihedral_sets, ring_bonds, rotor_dihedral_sets
from crmse_cli.data.graph import bond_graph


def toluene() -> Atoms:
    """Benzene with one H replaced by a methyl group (tetrahedral H, 1.50 Å ring-methyl bond)."""
    benzene = molecule("C6H6")
    z, x = list(benzene.numbers), benzene.positions.copy()
    c_ring = 0
    h = min((i for i in range(12) if z[i] == 1), key=lambda i: np.linalg.norm(x[i] - x[c_ring]))
    u = (x[h] - x[c_ring]) / np.linalg.norm(x[h] - x[c_ring])
    c_me = x[c_ring] + 1.50 * u
    w = np.cross(u, [0.0, 0.0, 1.0])
    w /= np.linalg.norm(w)
    v = np.cross(u, w)
    tilt = np.radians(180.0 - 109.5)  # each C-H makes the tetrahedral angle with the ring bond
    hs = [
        c_me + 1.09 * (np.cos(tilt) * u + np.sin(tilt) * (np.cos(t) * w + np.sin(t) * v))
        for t in np.radians([90.0, 210.0, 330.0])
    ]
    keep = [i for i in range(12) if i != h]
    return Atoms(numbers=[z[i] for i in keep] + [6, 1, 1, 1], positions=np.vstack([x[keep], c_me, *hs]))


def malonaldehyde() -> Atoms:
    """Planar enol malonaldehyde, H-O-C=C-C=O, from idealised bond lengths and 120 degree angles."""

    def at(origin: np.ndarray, length: float, deg: float) -> np.ndarray:
        return origin + length * np.array([np.cos(np.radians(deg)), np.sin(np.radians(deg)), 0.0])

    c1 = np.zeros(3)
    c2 = at(c1, 1.37, 0.0)
    c3 = at(c2, 1.44, 60.0)
    o1 = at(c1, 1.33, 120.0)  # enol O on C1
    o2 = at(c3, 1.23, 0.0)  # carbonyl O on C3
    h_o = at(o1, 0.97, 60.0)
    h1, h2, h3 = at(c1, 1.08, 240.0), at(c2, 1.08, 300.0), at(c3, 1.09, 120.0)
    return Atoms("CCCOOHHHH", positions=[c1, c2, c3, o1, o2, h_o, h1, h2, h3])


def _sets(atoms: Atoms) -> dict[str, np.ndarray]:
    return rotor_dihedral_sets(atoms.numbers, atoms.positions)


def test_toluene_has_one_methyl_rotor_pooled_over_its_three_h() -> None:
    mol = toluene()
    assert len(bond_graph(mol.numbers, mol.positions)) == 15
    sets = _sets(mol)
    assert len(sets) == 1
    ((name, quads),) = sets.items()
    assert quads.shape == (3, 4) and set(quads[:, 0]) == {12, 13, 14}
    assert name == f"H12-C11-C0-C{quads[0, 3]}" and mol.numbers[quads[0, 3]] == 6
    assert dihedral_sets(mol.numbers, mol.positions).keys() == sets.keys()  # no named torsions


def test_malonaldehyde_rotors_exclude_terminal_bonds() -> None:
    mol = malonaldehyde()
    sets = _sets(mol)
    # C1=C2, C2-C3 and C1-O(H) rotate; C3=O and every C-H end on a terminal atom.
    assert sorted(sets) == ["C0-C1-C2-O4", "H5-O3-C0-C1", "O3-C0-C1-C2"]
    assert sets["H5-O3-C0-C1"].tolist() == [[5, 3, 0, 1]]


def test_ring_bonds_and_linear_groups() -> None:
    benzene = molecule("C6H6")
    assert _sets(benzene) == {}
    biphenyl = molecule("biphenyl")
    bonds = bond_graph(biphenyl.numbers, biphenyl.positions)
    assert len(ring_bonds(bonds, len(biphenyl))) == 12
    (quads,) = _sets(biphenyl).values()  # the inter-ring bond joins ring atoms but is in no ring
    assert quads.shape == (1, 4)
    assert _sets(molecule("CH3CN")) == {}  # C-C-N is linear: no defined dihedral


def test_ethanol_keeps_its_named_torsions_and_the_generic_ones_agree() -> None:
    eth = molecule("CH3CH2OH")
    z, x = eth.numbers, eth.positions
    assert list(dihedral_sets(z, x)) == ["hydroxyl", "methyl"]
    named = named_dihedral_sets(z, x)
    rotors = _sets(eth)
    assert len(rotors) == 2
    by_bond = {frozenset(q[0, 1:3].tolist()): q for q in rotors.values()}
    for quads in named.values():  # the same rotors, whatever the naming
        assert frozenset(quads[0, 1:3].tolist()) in by_bond
    hydroxyl = by_bond[frozenset(named["hydroxyl"][0, 1:3].tolist())]
    assert hydroxyl[0, 0] == named["hydroxyl"][0, 0] and z[hydroxyl[0, 0]] == 1


def test_distribution_metrics_profile_every_rotor_of_an_unnamed_molecule() -> None:
    mol = toluene()
    rng = np.random.default_rng(0)
    ref = mol.positions + rng.normal(0, 0.02, size=(200, len(mol), 3))
    sample = mol.positions + rng.normal(0, 0.02, size=(150, len(mol), 3))
    metrics, arrays = distribution_metrics(mol.numbers, sample, None, ref, None, 500.0)
    (name,) = _sets(mol)
    assert metrics[f"dihedral_profile_error.{name}"][1] == "kcal/mol"
    assert np.isfinite(metrics[f"dihedral_js.{name}"][0])
    assert arrays[f"dihedral_atoms.{name}"].shape == (3, 4)


@pytest.mark.parametrize("name", ["trans-butane", "CH3COOH"])
def test_small_molecules_from_ase(name: str) -> None:
    mol = molecule(name)
    sets = _sets(mol)
    want = {"trans-butane": [1, 3, 3], "CH3COOH": [1, 3]}[name]
    assert sorted(len(q) for q in sets.values()) == want
