"""Names that one stage writes and another reads: metrics, artifact kinds, evaluation arrays.

Writers and readers import these constants, so a name is spelled once (docs/architecture.md has
the full table of metric names and units). Only names that cross a module boundary live here;
a name used inside one module stays there.
"""

from __future__ import annotations

# -- artifact kinds (registry ``artifacts.kind``) ------------------------------------------------
ARTIFACT_SAMPLES = "samples"
"""Sample run: the trajectory npz of ``sampling.trajectory.TrajectoryRecorder.save``."""
ARTIFACT_EXTXYZ = "extxyz"
"""Sample run: the same frames as extended XYZ (eV, eV/Å)."""
ARTIFACT_CHAINS = "chains"
"""Regularize run: a snapshot of the persistent chains."""
ARTIFACT_EVALUATION = "evaluation"
"""Evaluate run: the npz of arrays the report draws (keys below and ``distribution_metrics``')."""
ARTIFACT_REPORT = "report"
"""Compare run: the self-contained HTML page."""

# -- metric names (registry ``metrics.name``) ----------------------------------------------------
TEST_ENERGY_MAE = "test_energy_mae"  # kcal/mol, on the split's test frames
TEST_FORCE_MAE = "test_force_mae"  # kcal/mol/A
ENERGY_KS = "energy_ks"  # 1, Kolmogorov-Smirnov statistic of sample vs DFT energies
HR_MAE = "hr_mae"  # 1, integral of |h_sample - h_ref| dr
DIHEDRAL_PROFILE_ERROR = "dihedral_profile_error"  # kcal/mol, one per torsion: see dihedral_profile_error()
SHARE_OUTSIDE_SUPPORT = "share_outside_support"  # 1, frames with a pair below its DFT minimum - margin
STABLE_FRACTION = "stable_fraction"  # 1, replicas that never left the physical basin
MEDIAN_LEAVE_TIME_PS = "median_leave_time_ps"  # ps
CONFIG_TEMPERATURE_SAMPLE_K = "config_temperature_sample_K"  # K
CONFIG_TEMPERATURE_REF_K = "config_temperature_ref_K"  # K


def dihedral_profile_error(torsion: str) -> str:
    """The metric name of one torsion's free-energy profile error, e.g. ``dihedral_profile_error.methyl``."""
    return f"{DIHEDRAL_PROFILE_ERROR}.{torsion}"


# -- evaluation npz keys (``ARTIFACT_EVALUATION``) -----------------------------------------------
SAMPLE_ENERGIES = "sample_energies"  # (F_s,) kcal/mol, the model's energies of the samples
REF_ENERGIES = "ref_energies"  # (F_r,) kcal/mol, DFT energies of the reference frames
SURVIVAL_TIME_PS = "survival_time_ps"  # (T,) ps (steps / 1000 for ULA runs)
SURVIVAL_FRACTION = "survival_fraction"  # (T,) replicas still in the physical basin
MIN_HH_SAMPLE = "min_hh_sample"  # (F_s,) Å, closest H-H distance per frame
MIN_HH_REF = "min_hh_ref"  # (F_r,) Å
HR_EDGES = "hr_edges"  # (bins + 1,) Å
HR_SAMPLE = "hr_sample"  # (bins,) 1/Å
HR_REF = "hr_ref"  # (bins,) 1/Å
