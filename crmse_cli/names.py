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
STOPPED_BY_TIME_BUDGET = "stopped_by_time_budget"  # 1, pretrain: 1 when max_minutes cut the run short
ETA_BETA_KMAX = "eta_beta_kmax"  # 1, regularize: the chains' eta * beta * k_max on a training frame


def dihedral_profile_error(torsion: str) -> str:
    """The metric name of one torsion's free-energy profile error, e.g. ``dihedral_profile_error.methyl``."""
    return f"{DIHEDRAL_PROFILE_ERROR}.{torsion}"


DIHEDRAL_PROFILE_FLOOR = "dihedral_profile_floor"  # kcal/mol, one per torsion: reference half vs half


def dihedral_profile_floor(torsion: str) -> str:
    """One torsion's profile noise floor (reference half vs half), e.g. ``dihedral_profile_floor.ester``."""
    return f"{DIHEDRAL_PROFILE_FLOOR}.{torsion}"


CORE_METRICS = (TEST_ENERGY_MAE, TEST_FORCE_MAE, ENERGY_KS, HR_MAE)
"""The accuracy and distribution metrics every summary table starts with."""

DIHEDRAL_JS = "dihedral_js"  # 1, Jensen-Shannon divergence of one torsion's angle histogram

# -- metric titles: what every table and the report call a metric ------------------------------
TITLES: dict[str, tuple[str, str]] = {
    TEST_ENERGY_MAE: ("test energy MAE", "kcal/mol"),
    TEST_FORCE_MAE: ("test force MAE", "kcal/mol/Å"),
    ENERGY_KS: ("energy KS vs {ref}", ""),
    "energy_mean_sample_minus_ref": ("mean energy, samples - {ref}", "kcal/mol"),
    HR_MAE: ("h(r) MAE", ""),
    "pair_hist_mae_mean": ("pair-distance histogram MAE (mean over pairs)", ""),
    STABLE_FRACTION: ("replicas that stayed physical", ""),
    "n_left": ("replicas that left the basin", ""),
    "n_left_collapse": ("replicas that collapsed (pair test)", ""),
    "n_left_bond": ("replicas that broke a bond", ""),
    MEDIAN_LEAVE_TIME_PS: ("median leave time of those that left", "ps"),
    "median_leave_steps": ("median leave steps of those that left", ""),
    SHARE_OUTSIDE_SUPPORT: ("share of frames outside the {ref} support", ""),
    "min_pair_distance_sample": ("closest pair seen", "Å"),
    "energy_std_sample": ("energy spread of samples", "kcal/mol"),
    "energy_std_ref": ("energy spread of {ref}", "kcal/mol"),
    CONFIG_TEMPERATURE_SAMPLE_K: ("T_conf of samples", "K"),
    CONFIG_TEMPERATURE_REF_K: ("T_conf of {ref}, its forces, this model's Laplacian", "K"),
    "virial_temperature_sample_K": ("T_virial of samples, model forces", "K"),
    "virial_temperature_sample_K_err": ("T_virial of samples, its block-bootstrap error", "K"),
    "virial_temperature_ref_K": ("T_virial of {ref}, its forces", "K"),
    "virial_temperature_ref_K_err": ("T_virial of {ref}, its block-bootstrap error", "K"),
    "sampling_temperature_K": ("sampling temperature", "K"),
    "n_sample_frames": ("frames compared", ""),
}
"""metric -> (title, unit shown in tables); ``{ref}`` names the reference (``reference`` by default).
Per-torsion metrics (``dihedral_profile_error.<torsion>``, ``dihedral_profile_floor.<torsion>``,
``dihedral_js.<torsion>``) are titled by
:func:`metric_title` from the torsion's name."""


def metric_title(key: str, *, ref: str = "reference", unit: bool = True) -> str:
    """The title of metric ``key`` in every table and report, with its unit in parentheses."""
    family, _, torsion = key.partition(".")
    if family == DIHEDRAL_PROFILE_ERROR and torsion:
        title, u = f"{torsion} profile error", "kcal/mol"
    elif family == DIHEDRAL_PROFILE_FLOOR and torsion:
        title, u = f"{torsion} profile noise floor ({{ref}} half vs half)", "kcal/mol"
    elif family == DIHEDRAL_JS and torsion:
        title, u = f"{torsion} dihedral JS divergence", ""
    else:
        title, u = TITLES.get(key, (key.replace("_", " "), ""))
    title = title.replace("{ref}", ref)
    return f"{title} ({u})" if unit and u else title


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
