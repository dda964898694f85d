"""The named unit factors agree with SciPy's CODATA constants."""

import math

from scipy import constants as C

from crmse_cli import units


def test_boltzmann_in_kcal_per_mol() -> None:
    kb = C.k * C.N_A / 4184.0
    assert math.isclose(units.KB_KCAL_PER_MOL_K, kb, rel_tol=1e-6)
    assert math.isclose(units.kT(500.0), 0.99360, rel_tol=1e-4)  # METHOD.md's value


def test_kcal_per_mol_in_ev() -> None:
    ev = 4184.0 / C.N_A / C.e
    assert math.isclose(units.EV_PER_KCAL_PER_MOL, ev, rel_tol=1e-5)
    assert math.isclose(units.EV_PER_KCAL_PER_MOL * units.KCAL_PER_MOL_PER_EV, 1.0)


def test_amu_angstrom_fs_in_kcal_per_mol() -> None:
    amu_a2_fs2_joule = C.physical_constants["atomic mass constant"][0] * 1e-20 / 1e-30
    kcal_mol = amu_a2_fs2_joule * C.N_A / 4184.0
    assert math.isclose(units.KCAL_PER_MOL_PER_AMU_A2_FS2, kcal_mol, rel_tol=1e-6)


def test_energy_unit_table() -> None:
    assert units.ENERGY_UNITS["kcal/mol"] == 1.0
    assert math.isclose(units.ENERGY_UNITS["eV"] * units.EV_PER_KCAL_PER_MOL, 1.0)


def test_atomic_units() -> None:
    hartree_kcal_mol = C.physical_constants["Hartree energy"][0] * C.N_A / 4184.0
    bohr_a = C.physical_constants["Bohr radius"][0] * 1e10
    assert math.isclose(units.KCAL_PER_MOL_PER_HARTREE, hartree_kcal_mol, rel_tol=1e-9)
    assert math.isclose(units.A_PER_BOHR, bohr_a, rel_tol=1e-9)
    assert math.isclose(units.A_PER_BOHR * units.BOHR_PER_A, 1.0)
    assert math.isclose(units.KCAL_PER_MOL_A_PER_HARTREE_BOHR, hartree_kcal_mol / bohr_a, rel_tol=1e-9)
