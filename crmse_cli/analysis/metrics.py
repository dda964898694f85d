"""Distribution-level comparison of sampled frames with the DFT reference (METHOD.md).

:func:`distribution_metrics` computes every metric of "Observables and metrics" that needs no
model, and returns with them the exact arrays they were computed from, so a report draws the
numbers that were stored.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np

from crmse_cli import names
from crmse_cli.analysis.dihedrals import (
    DIHEDRAL_BINS,
    dihedral_angles,
    dihedral_density_2d,
    free_energy_profile,
    js_divergence,
    profile_error,
)
from crmse_cli.analysis.observables import (
    HR_BINS,
    HR_MAX_A,
    PAIR_EDGES_A,
    check_frames,
    finite_frames,
    hr_histogram,
    hr_mae,
    min_pair_distance_per_frame,
    outside_support,
    pair_histograms,
    pairs_that_matter,
)
from crmse_cli.analysis.rotors import dihedral_sets as default_dihedral_sets
from crmse_cli.analysis.stats import energy_ks
from crmse_cli.defaults import COLLAPSE_MARGIN_A
from crmse_cli.errors import DataError

log = logging.getLogger(__name__)

Metrics = dict[str, tuple[float, str]]
"""Metric name -> (value, unit string), ready for ``Registry.log_metrics``."""


class DistributionComparison(NamedTuple):
    """Result of :func:`distribution_metrics`; unpacks as ``metrics, arrays = ...``.

    Attributes:
        metrics: name -> (value, unit).
        arrays: name -> array, flat names that ``np.savez`` stores as they are:
            ``hr_edges`` (501,) Å, ``hr_sample`` / ``hr_ref`` (500,) 1/Å;
            ``energy_edges`` kcal/mol, ``energy_hist_sample`` / ``energy_hist_ref`` 1/(kcal/mol)
            (absent when no sample energies were given);
            ``dihedral_edges`` degrees; per named torsion ``<name>``: ``dihedral_atoms.<name>``
            (Q, 4), ``dihedral_F_sample.<name>`` / ``dihedral_F_ref.<name>`` kcal/mol (inf where
            empty), ``dihedral_p_sample.<name>`` / ``dihedral_p_ref.<name>`` probability per bin;
            ``dihedral2d_names`` (2,) str, ``dihedral2d_sample`` / ``dihedral2d_ref`` 1/deg^2 for
            the first two named torsions;
            ``pair_labels`` (P,) str, ``pair_index`` (P, 2), ``pair_edges`` Å,
            ``pair_hist_sample`` / ``pair_hist_ref`` (P, n) 1/Å;
            ``min_pair_sample`` / ``min_pair_ref`` per-frame closest distance, Å.
    """

    metrics: Metrics
    arrays: dict[str, np.ndarray]


def _energy_part(
    e_sample: np.ndarray, e_ref: np.ndarray, n_bins: int, metrics: Metrics, arrays: dict[str, np.ndarray]
) -> None:
    metrics[names.ENERGY_KS] = (energy_ks(e_sample, e_ref), "1")
    metrics["energy_mean_sample_minus_ref"] = (float(np.mean(e_sample) - np.mean(e_ref)), "kcal/mol")
    metrics["energy_std_sample"] = (float(np.std(e_sample)), "kcal/mol")
    metrics["energy_std_ref"] = (float(np.std(e_ref)), "kcal/mol")
    # Shared edges over both sets, so that spurious deep minima stay visible in the plot.
    edges = np.histogram_bin_edges(np.concatenate([e_sample, e_ref]), bins=n_bins)
    arrays["energy_edges"] = edges
    arrays["energy_hist_sample"] = np.histogram(e_sample, bins=edges, density=True)[0]
    arrays["energy_hist_ref"] = np.histogram(e_ref, bins=edges, density=True)[0]


def profile_floor(phi_ref_deg: np.ndarray, temperature_K: float, n_bins: int = DIHEDRAL_BINS) -> float:
    """The noise floor of a profile error: the reference's first half of frames against its second.

    A sampler's profile cannot be judged closer to the reference than the reference is to itself
    on half its frames (``benchmarks/dft_floor.py``'s trajectory-order halves: for a generated
    xTB reference, different replicas). NaN with fewer than 2 frames.

    Args:
        phi_ref_deg: (F,) or (F, Q) degrees, the reference frames' angles in their stored order.
        temperature_K: kT of the profiles, K.
        n_bins: periodic bins over 360 degrees.

    Returns:
        kcal/mol, as :func:`~crmse_cli.analysis.dihedrals.profile_error`.
    """
    phi = np.asarray(phi_ref_deg, dtype=np.float64)
    if len(phi) < 2:
        return float("nan")
    half = len(phi) // 2
    first = free_energy_profile(phi[:half], temperature_K, n_bins)
    second = free_energy_profile(phi[half:], temperature_K, n_bins)
    return profile_error(first.free_energy, second.free_energy)


def _dihedral_part(
    sets: dict[str, np.ndarray],
    sample: np.ndarray,
    ref: np.ndarray,
    temperature_K: float,
    n_bins: int,
    metrics: Metrics,
    arrays: dict[str, np.ndarray],
) -> None:
    angles: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, quads in sets.items():
        phi_s, phi_r = dihedral_angles(sample, quads), dihedral_angles(ref, quads)  # (F, Q)
        angles[name] = (phi_s, phi_r)
        prof_s = free_energy_profile(phi_s, temperature_K, n_bins)
        prof_r = free_energy_profile(phi_r, temperature_K, n_bins)
        metrics[names.dihedral_profile_error(name)] = (
            profile_error(prof_s.free_energy, prof_r.free_energy),
            "kcal/mol",
        )
        metrics[f"{names.DIHEDRAL_JS}.{name}"] = (js_divergence(prof_s.prob, prof_r.prob), "1")
        floor = profile_floor(phi_r, temperature_K, n_bins)
        metrics[names.dihedral_profile_floor(name)] = (floor, "kcal/mol")
        arrays["dihedral_edges"] = prof_r.edges
        arrays[f"dihedral_atoms.{name}"] = quads
        arrays[f"dihedral_F_sample.{name}"] = prof_s.free_energy
        arrays[f"dihedral_F_ref.{name}"] = prof_r.free_energy
        arrays[f"dihedral_p_sample.{name}"] = prof_s.prob
        arrays[f"dihedral_p_ref.{name}"] = prof_r.prob
    if len(angles) >= 2:
        first, second = list(angles)[:2]
        arrays["dihedral2d_names"] = np.array([first, second])
        for tag, k in (("sample", 0), ("ref", 1)):
            edges_2d, dens = dihedral_density_2d(angles[first][k], angles[second][k], n_bins)
            arrays[f"dihedral2d_{tag}"] = dens
            arrays["dihedral2d_edges"] = edges_2d


def _pair_part(
    species: np.ndarray,
    sample: np.ndarray,
    ref: np.ndarray,
    edges: np.ndarray,
    margin_A: float,
    metrics: Metrics,
    arrays: dict[str, np.ndarray],
) -> None:
    pairs = pairs_that_matter(species, ref)
    index = np.array(list(pairs.values()), dtype=np.int64).reshape(-1, 2)
    hist_s, hist_r = pair_histograms(sample, index, edges), pair_histograms(ref, index, edges)
    maes = [hr_mae(hs, hr, edges) for hs, hr in zip(hist_s, hist_r, strict=True)]
    for label, mae in zip(pairs, maes, strict=True):
        metrics[f"pair_hist_mae.{label}"] = (mae, "1")
    if maes:
        metrics["pair_hist_mae_mean"] = (float(np.mean(maes)), "1")
        metrics["pair_hist_mae_max"] = (float(np.max(maes)), "1")
    arrays.update(pair_labels=np.array(list(pairs)), pair_index=index, pair_edges=np.asarray(edges))
    arrays.update(pair_hist_sample=hist_s, pair_hist_ref=hist_r)

    # Collapse test against each pair's own reference minimum (as the stability monitor does).
    outside = outside_support(sample, ref, margin_A)
    arrays["min_pair_sample"] = min_pair_distance_per_frame(sample)
    arrays["min_pair_ref"] = min_pair_distance_per_frame(ref)
    metrics[names.SHARE_OUTSIDE_SUPPORT] = (float(outside.mean()), "1")
    metrics["min_pair_distance_sample"] = (float(arrays["min_pair_sample"].min()), "A")
    metrics["min_pair_distance_ref"] = (float(arrays["min_pair_ref"].min()), "A")


def distribution_metrics(
    species: np.ndarray,
    sample_positions: np.ndarray,
    sample_energies: np.ndarray | None,
    ref_positions: np.ndarray,
    ref_energies: np.ndarray | None,
    temperature_K: float,
    *,
    hr_bins: int = HR_BINS,
    hr_max_A: float = HR_MAX_A,
    dihedral_bins: int = DIHEDRAL_BINS,
    pair_edges_A: np.ndarray = PAIR_EDGES_A,
    energy_bins: int = 60,
    collapse_margin_A: float = COLLAPSE_MARGIN_A,
    dihedral_sets: dict[str, np.ndarray] | None = None,
) -> DistributionComparison:
    """Compare sampled frames with reference frames on every distribution metric of METHOD.md.

    Frames with non-finite coordinates (replicas that blew up) are dropped from the sample and
    counted in ``share_nonfinite``; the torsions and pairs come from the reference bond graph.

    Args:
        species: (N,) atomic numbers.
        sample_positions: (F_s, N, 3) Å, sampled frames.
        sample_energies: (F_s,) kcal/mol, the model's energies of the sampled frames, or None to
            skip the energy metrics.
        ref_positions: (F_r, N, 3) Å, DFT reference frames.
        ref_energies: (F_r,) kcal/mol, their DFT energies (or None).
        temperature_K: kT of the free-energy profiles, K (the sampling temperature).
        hr_bins: number of h(r) bins over (0, hr_max_A].
        hr_max_A: the largest distance of h(r), Å.
        dihedral_bins: periodic bins over 360 degrees.
        pair_edges_A: uniform edges of the per-pair histograms, Å.
        energy_bins: bins of the stored energy histograms (plots only; KS needs no bins).
        collapse_margin_A: a sample frame is outside the support when some pair is closer than
            its reference minimum minus this, Å.
        dihedral_sets: name -> (Q, 4) torsions to profile; default
            :func:`~crmse_cli.analysis.rotors.dihedral_sets` of the reference (the named
            torsions and every other rotatable bond, named by its atoms).

    Returns:
        :class:`DistributionComparison` ``(metrics, arrays)``. Metric names: ``energy_ks``,
        ``energy_mean_sample_minus_ref``, ``energy_std_sample``, ``energy_std_ref``, ``hr_mae``,
        ``dihedral_profile_error.<torsion>``, ``dihedral_js.<torsion>``,
        ``dihedral_profile_floor.<torsion>`` (:func:`profile_floor`), ``pair_hist_mae.<pair>``
        (e.g. ``pair_hist_mae.C0-H3``), ``pair_hist_mae_mean``, ``pair_hist_mae_max``,
        ``share_outside_support``, ``min_pair_distance_sample``, ``min_pair_distance_ref``,
        ``share_nonfinite``, ``n_sample_frames``, ``n_ref_frames``.
    """
    z = np.asarray(species, dtype=np.int64)
    ref = check_frames(ref_positions, n_atoms=len(z), what="reference positions")
    raw = np.asarray(sample_positions, dtype=np.float64)
    ok = finite_frames(raw) if raw.ndim == 3 else np.zeros(0, dtype=bool)
    if raw.ndim != 3 or not ok.any():
        raise DataError(
            f"sample positions must be (frames, atoms, 3) with some finite frames, got {raw.shape}"
        )
    sample = check_frames(raw[ok], n_atoms=len(z), what="sample positions")
    if not ok.all():
        log.warning("dropped %d of %d sample frames with non-finite coordinates", (~ok).sum(), ok.size)
    metrics: Metrics = {
        "n_sample_frames": (float(len(sample)), "1"),
        "n_ref_frames": (float(len(ref)), "1"),
        "share_nonfinite": (float(1.0 - ok.mean()), "1"),
    }
    arrays: dict[str, np.ndarray] = {}

    if sample_energies is not None and ref_energies is not None:
        e_s = np.asarray(sample_energies, dtype=np.float64).ravel()
        e_r = np.asarray(ref_energies, dtype=np.float64).ravel()
        if e_s.shape != ok.shape or e_r.shape != (len(ref),):
            raise DataError("sample/reference energies must have one value per frame of their positions")
        _energy_part(e_s[ok], e_r, energy_bins, metrics, arrays)

    edges, h_s = hr_histogram(sample, hr_bins, hr_max_A)
    _, h_r = hr_histogram(ref, hr_bins, hr_max_A)
    metrics[names.HR_MAE] = (hr_mae(h_s, h_r, edges), "1")
    arrays.update(hr_edges=edges, hr_sample=h_s, hr_ref=h_r)

    sets = default_dihedral_sets(z, ref) if dihedral_sets is None else dihedral_sets
    _dihedral_part(sets, sample, ref, temperature_K, dihedral_bins, metrics, arrays)
    _pair_part(z, sample, ref, np.asarray(pair_edges_A, dtype=np.float64), collapse_margin_A, metrics, arrays)
    return DistributionComparison(metrics, arrays)
