"""Observables and distribution metrics of frame sets against the DFT reference (numpy/scipy).

See METHOD.md, "Observables and metrics". The functions take frame sets (F, N, 3) in Å and
species (N,); none needs torch. The configurational temperature takes forces and laplacians that
the caller computed with the model.
"""

from crmse_cli.analysis.dihedrals import (
    Profile,
    dihedral_angles,
    dihedral_density_2d,
    free_energy_profile,
    js_divergence,
    profile_error,
    proper_dihedrals,
)
from crmse_cli.analysis.metrics import DistributionComparison, Metrics, distribution_metrics
from crmse_cli.analysis.observables import (
    frame_pair_distances,
    hr_histogram,
    hr_mae,
    min_pair_distance_per_frame,
    outside_support,
    pair_histograms,
    pairs_that_matter,
)
from crmse_cli.analysis.rotors import dihedral_sets, named_dihedral_sets, named_dihedrals, rotor_dihedral_sets
from crmse_cli.analysis.stats import (
    EnsembleCheck,
    StabilityStats,
    block_bootstrap_means,
    configurational_temperature,
    configurational_temperature_error,
    energy_ks,
    energy_spread_temperature,
    ensemble_check,
    stability_summary,
    virial_temperature,
)

__all__ = [
    "DistributionComparison",
    "EnsembleCheck",
    "Metrics",
    "Profile",
    "StabilityStats",
    "block_bootstrap_means",
    "configurational_temperature",
    "configurational_temperature_error",
    "dihedral_angles",
    "dihedral_density_2d",
    "dihedral_sets",
    "distribution_metrics",
    "energy_ks",
    "energy_spread_temperature",
    "ensemble_check",
    "frame_pair_distances",
    "free_energy_profile",
    "hr_histogram",
    "hr_mae",
    "js_divergence",
    "min_pair_distance_per_frame",
    "named_dihedral_sets",
    "named_dihedrals",
    "outside_support",
    "pair_histograms",
    "pairs_that_matter",
    "profile_error",
    "proper_dihedrals",
    "rotor_dihedral_sets",
    "stability_summary",
    "virial_temperature",
]
