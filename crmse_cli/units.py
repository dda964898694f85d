"""The one unit system of crmse and the named factors that convert at the edges.

Internal units are rMD17's: length in Å, energy in kcal/mol, force in kcal/mol/Å, time in fs,
mass in amu (g/mol), temperature in K. Convert only where data enters (xyz files in eV) or
leaves (the ASE calculator in eV, reports in meV). Every factor is tested against SciPy's
CODATA constants in ``tests/test_units.py``.
"""

from __future__ import annotations

# Boltzmann constant, kcal/(mol K).
KB_KCAL_PER_MOL_K: float = 0.0019872041
# 1 kcal/mol in eV per particle (ASE's value: ase.units.kcal / ase.units.mol).
EV_PER_KCAL_PER_MOL: float = 0.0433641
KCAL_PER_MOL_PER_EV: float = 1.0 / EV_PER_KCAL_PER_MOL
MEV_PER_KCAL_PER_MOL: float = 1000.0 * EV_PER_KCAL_PER_MOL
# Kinetic energy conversion: 1 amu Å^2 / fs^2 expressed in kcal/mol.
# 1 amu Å^2/fs^2 = 1.66053906660e-27 kg * 1e-20 m^2 / 1e-30 s^2 = 1.66053906660e-17 J per particle
# times N_A (6.02214076e23) / 4184 J/kcal = 2390.0573 kcal/mol.
KCAL_PER_MOL_PER_AMU_A2_FS2: float = 2390.057361
AMU_A2_FS2_PER_KCAL_PER_MOL: float = 1.0 / KCAL_PER_MOL_PER_AMU_A2_FS2

# Atomic units (tblite/xTB speak Hartree and Bohr). CODATA 2018: E_h = 4.3597447222071e-18 J,
# times N_A / 4184 J/kcal = 627.5094740631 kcal/mol; a_0 = 0.529177210903 Å.
KCAL_PER_MOL_PER_HARTREE: float = 627.5094740631
A_PER_BOHR: float = 0.529177210903
BOHR_PER_A: float = 1.0 / A_PER_BOHR
# A gradient in Hartree/Bohr expressed in kcal/mol/Å.
KCAL_PER_MOL_A_PER_HARTREE_BOHR: float = KCAL_PER_MOL_PER_HARTREE / A_PER_BOHR

ENERGY_UNIT = "kcal/mol"
FORCE_UNIT = "kcal/mol/A"
LENGTH_UNIT = "A"
TIME_UNIT = "fs"
MASS_UNIT = "amu"
TEMPERATURE_UNIT = "K"

XYZ_ENERGY_UNITS = ("eV", "kcal/mol")
"""Energy units an extended-XYZ file may use (forces: the same unit per Å); keys of ENERGY_UNITS."""

ENERGY_UNITS: dict[str, float] = {
    "kcal/mol": 1.0,
    "eV": KCAL_PER_MOL_PER_EV,
    "meV": KCAL_PER_MOL_PER_EV / 1000.0,
}
"""Factors that convert an energy given in the key's unit into kcal/mol."""


def kT(temperature_K: float) -> float:
    """Thermal energy k_B T in kcal/mol."""
    return KB_KCAL_PER_MOL_K * temperature_K


def beta(temperature_K: float) -> float:
    """Inverse temperature 1/(k_B T) in mol/kcal."""
    return 1.0 / kT(temperature_K)
