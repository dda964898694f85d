"""Dihedral angles, torsion detection from the bond graph, free-energy profiles, JS divergence."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from crmse_cli.analysis.dihedrals import (
    dihedral_angles,
    dihedral_density_2d,
    free_energy_profile,
    hill_formula,
    js_divergence,
    profile_error,
    proper_dihedrals,
    ring_atoms,
)
from crmse_cli.analysis.rotors import named_dihedral_sets, named_dihedrals
from crmse_cli.data.graph import bond_graph
from crmse_cli.units import kT


def test_dihedral_matches_a_hand_computed_angle() -> None:
    # a on +x, b at the origin, c on +z, d at angle t in the xy-plane above c: phi = t (IUPAC).
    for t in (30.0, 90.0, -60.0, 135.0, -179.0):
        r = math.radians(t)
        x = np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 1.0], [math.cos(r), math.sin(r), 1.0]])
        assert dihedral_angles(x, np.array([[0, 1, 2, 3]]))[0] == pytest.approx(t, abs=1e-9)
    # trans is +180, never -180
    x = np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 1.0], [-1.0, 0.0, 1.0]])
    assert dihedral_angles(x, np.array([[0, 1, 2, 3]]))[0] == 180.0


def test_dihedral_agrees_with_ase_on_random_frames() -> None:
    x = np.random.default_rng(3).normal(size=(20, 6, 3))
    quads = np.array([[0, 1, 2, 3], [5, 2, 4, 1]])
    phi = dihedral_angles(x, quads)
    assert phi.shape == (20, 2) and np.all(phi > -180) and np.all(phi <= 180)
    for f in range(20):
        for q, quad in enumerate(quads):
            ref = Atoms("H6", positions=x[f]).get_dihedral(*quad)  # degrees in [0, 360)
            assert (phi[f, q] - ref) % 360.0 == pytest.approx(0.0, abs=1e-7) or (
                (phi[f, q] - ref) % 360.0 == pytest.approx(360.0, abs=1e-7)
            )


def test_ethanol_torsions_are_found_from_the_bond_graph(ethanol_npz: Path) -> None:
    data = np.load(ethanol_npz)
    z, x = data["nuclear_charges"], data["coords"][:100]
    bonds = {tuple(sorted(b)) for b in bond_graph(z, x).tolist()}
    sets = named_dihedral_sets(z, x)
    assert set(sets) == {"hydroxyl", "methyl"}
    (h, o, c1, c2) = sets["hydroxyl"][0]
    assert [z[h], z[o], z[c1], z[c2]] == [1, 8, 6, 6]
    assert {(min(h, o), max(h, o)), (min(o, c1), max(o, c1)), (min(c1, c2), max(c1, c2))} <= bonds
    methyl = sets["methyl"]
    assert methyl.shape == (3, 4) and len(set(methyl[:, 0])) == 3
    for hm, cm, co, oo in methyl:
        assert [z[hm], z[cm], z[co], z[oo]] == [1, 6, 6, 8] and (min(hm, cm), max(hm, cm)) in bonds
        assert co == c1 and oo == o and cm == c2
    assert named_dihedrals(z, x) == {"hydroxyl": (8, 2, 0, 1), "methyl": (5, 1, 0, 2)}
    assert len(proper_dihedrals(bond_graph(z, x), 9)) == 12  # 9 about C-C, 3 about C-O


def test_aspirin_torsions_are_found_and_follow_a_relabelling(aspirin_npz: Path) -> None:
    data = np.load(aspirin_npz)
    z, x = data["nuclear_charges"], data["coords"][:100]
    assert hill_formula(z) == "C9H8O4"
    bonds = bond_graph(z, x)
    ring = ring_atoms(bonds, len(z))
    assert len(ring) == 6 and all(z[i] == 6 for i in ring)
    got = named_dihedrals(z, x)
    ca, cb, o_est, c_acyl = got["ester"]
    assert ca in ring and cb in ring and o_est not in ring and c_acyl not in ring
    assert [z[o_est], z[c_acyl]] == [8, 6]
    cc, cd, c_acid, o_h = got["carboxylic_acid"]
    assert (cc, cd) == (cb, ca)  # the two substituted ortho ring carbons, in reverse order
    bond_set = {tuple(b) for b in bonds.tolist()}
    assert any(z[k] == 1 and (min(o_h, k), max(o_h, k)) in bond_set for k in range(len(z)))
    assert got == {
        "ester": (5, 6, 12, 11),
        "carboxylic_acid": (6, 5, 10, 9),
        "acid_hydroxyl": (13, 9, 10, 5),  # H-O(acid)-C(acid)-C(ring)
        "ester_acyl": (6, 12, 11, 4),  # C(ring)-O(ester)-C(acyl)-C(methyl): cis/trans ester
        "acetyl_methyl": (18, 4, 11, 12),  # its three H pooled; the first H-C-C(acyl)-O(ester)
    }
    # Relabel the atoms: the same chemical atoms must be found under their new indices.
    perm = np.random.default_rng(7).permutation(len(z))  # new atom k is old atom perm[k]
    inverse = np.argsort(perm)
    moved = named_dihedral_sets(z[perm], x[:, perm])
    for name, quads in named_dihedral_sets(z, x).items():  # a pooled methyl: the same set of three
        assert {tuple(q) for q in moved[name].tolist()} == {tuple(int(inverse[i]) for i in q) for q in quads}


def test_unknown_molecule_has_no_named_torsions() -> None:
    water = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    assert named_dihedral_sets(np.array([8, 1, 1]), water) == {}


def test_profile_of_a_uniform_distribution_is_flat() -> None:
    grid = np.linspace(-180.0, 180.0, 36 * 100, endpoint=False) + 1.8  # 100 per bin
    prof = free_energy_profile(grid, 500.0)
    assert prof.free_energy.shape == (36,) and np.allclose(prof.free_energy, 0.0)
    rand = np.random.default_rng(0).uniform(-180.0, 180.0, 360_000)
    assert np.max(free_energy_profile(rand, 500.0).free_energy) < 0.05


def test_profile_recovers_a_known_free_energy() -> None:
    # Two populated bins with p ratio 1:e^2 -> F difference 2 kT; periodic: 180 lands with -180.
    phi = np.concatenate([np.full(100, 180.0), np.full(739, 5.0)])  # 739/100 ~ e^2
    prof = free_energy_profile(phi, 300.0)
    assert prof.prob[0] == pytest.approx(100 / 839) and prof.prob[18] == pytest.approx(739 / 839)
    assert prof.free_energy[18] == 0.0
    assert prof.free_energy[0] == pytest.approx(kT(300.0) * math.log(7.39), rel=1e-6)
    assert np.isinf(prof.free_energy[5])


def test_profile_error_uses_bins_populated_in_both() -> None:
    a = np.array([0.0, 1.0, np.inf, 2.0])
    b = np.array([0.5, 0.0, 3.0, np.inf])
    assert profile_error(a, b) == pytest.approx(0.75)
    assert math.isnan(profile_error(np.array([np.inf, 0.0]), np.array([0.0, np.inf])))


def test_js_divergence_bounds() -> None:
    p = np.array([0.2, 0.3, 0.5, 0.0])
    assert js_divergence(p, p) == 0.0
    assert js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(math.log(2.0))
    q = np.array([0.25, 0.25, 0.25, 0.25])
    js = js_divergence(p, q)
    assert 0.0 < js < math.log(2.0) and js == pytest.approx(js_divergence(q, p))
    # hand value: m = (0.225, 0.275, 0.375, 0.125)
    m = (p + q) / 2
    hand = 0.5 * sum(pi * math.log(pi / mi) for pi, mi in zip(p, m, strict=True) if pi > 0)
    hand += 0.5 * sum(qi * math.log(qi / mi) for qi, mi in zip(q, m, strict=True))
    assert js == pytest.approx(hand, rel=1e-12)


def test_2d_density_integrates_to_one_and_pairs_equivalent_angles() -> None:
    a = np.array([[10.0], [10.0]])
    b = np.array([[-100.0, 20.0, 140.0], [-100.0, 20.0, 140.0]])
    edges, dens = dihedral_density_2d(a, b)
    assert dens.shape == (36, 36) and np.sum(dens) * 100.0 == pytest.approx(1.0)
    assert np.count_nonzero(dens) == 3 and dens[19, 8] > 0 and dens[19, 20] > 0 and dens[19, 32] > 0
    assert edges[0] == -180.0 and edges[-1] == 180.0
