"""Energy KS, stability summary, configurational temperature, and distribution metrics on real data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import ANDERSX, require_shared
from scipy.stats import ks_2samp

from crmse_cli.analysis import (
    configurational_temperature,
    configurational_temperature_error,
    distribution_metrics,
    energy_ks,
    hr_mae,
    profile_error,
    stability_summary,
    virial_temperature,
)
from crmse_cli.analysis.stats import block_bootstrap_means
from crmse_cli.errors import DataError
from crmse_cli.units import KB_KCAL_PER_MOL_K


def test_energy_ks_known_values() -> None:
    a = np.arange(10.0)
    assert energy_ks(a, a) == 0.0
    assert energy_ks(a, a + 100.0) == 1.0
    b = np.random.default_rng(0).normal(size=300)
    c = np.random.default_rng(1).normal(0.5, 1.0, size=400)
    assert energy_ks(b, c) == pytest.approx(ks_2samp(b, c).statistic)
    assert energy_ks(a, a + 5.0) == pytest.approx(0.5)  # half of each CDF overlaps
    with pytest.raises(DataError):
        energy_ks(np.array([]), a)


def test_stability_summary_treats_survivors_as_censored() -> None:
    s = stability_summary(np.array([100.0, 300.0, np.inf, np.nan]))
    assert (s.n_replicas, s.n_left, s.fraction_stable) == (4, 2, 0.5)
    assert s.median_time_to_leave == math.inf  # half survived: median survival not reached
    assert s.median_time_among_left == 200.0
    s2 = stability_summary(np.array([100.0, 300.0, 500.0, np.inf, 50.0]))
    assert s2.median_time_to_leave == 300.0 and s2.fraction_stable == pytest.approx(0.2)
    rows = s2.to_metrics()
    assert rows["stability_fraction_stable"] == (pytest.approx(0.2), "1")
    assert rows["stability_median_time_to_leave"] == (300.0, "fs")
    none_left = stability_summary(np.full(8, np.inf), unit="steps")
    assert none_left.fraction_stable == 1.0 and math.isnan(none_left.median_time_among_left)


def _harmonic(temperature_K: float, k: np.ndarray, n_frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Samples of U = sum k_i x_i^2 / 2 at temperature T: forces (F, N, 3) and laplacians (F,)."""
    kt = KB_KCAL_PER_MOL_K * temperature_K
    x = np.random.default_rng(seed).normal(size=(n_frames, *k.shape)) * np.sqrt(kt / k)
    return -k * x, np.full(n_frames, k.sum())


@pytest.mark.parametrize("temperature_K", [300.0, 500.0, 690.0])
def test_configurational_temperature_of_a_harmonic_system(temperature_K: float) -> None:
    # Anisotropic stiffness (kcal/mol/Å^2), 9 atoms as in ethanol: T_conf must equal T anyway.
    k = np.random.default_rng(5).uniform(50.0, 700.0, size=(9, 3))
    forces, lap = _harmonic(temperature_K, k, 4000, seed=int(temperature_K))
    t, err = configurational_temperature_error(forces, lap, n_boot=400)
    assert t == configurational_temperature(forces, lap)
    # The exact standard error of the mean of a weighted chi^2: T sqrt(2 sum k^2 / (sum k)^2 / F).
    expected_err = temperature_K * math.sqrt(2.0 * np.sum(k**2) / np.sum(k) ** 2 / 4000)
    assert err == pytest.approx(expected_err, rel=0.2)
    assert abs(t - temperature_K) < 4.0 * expected_err
    # Samples at the wrong temperature must not pass: forces of 2T give 2T.
    hot_f, hot_lap = _harmonic(2 * temperature_K, k, 4000, seed=1)
    assert configurational_temperature(hot_f, hot_lap) == pytest.approx(2 * temperature_K, rel=0.05)


def test_both_temperatures_of_a_translation_invariant_spring_network() -> None:
    # U = 1/2 sum_ij w_ij |x_i - x_j|^2 over 9 atoms: Gaussian in the 3(N-1) relative coordinates,
    # sampled exactly from the eigenmodes of the weighted graph laplacian L (forces -L x).
    rng = np.random.default_rng(11)
    n, temperature_K, n_frames = 9, 500.0, 4000
    w = np.triu(rng.uniform(20.0, 300.0, size=(n, n)), k=1)
    lap_graph = np.diag((w + w.T).sum(axis=1)) - (w + w.T)
    lam, vec = np.linalg.eigh(lap_graph)  # lam[0] = 0: the translation
    amp = (
        rng.normal(size=(n_frames, n - 1, 3)) * np.sqrt(KB_KCAL_PER_MOL_K * temperature_K / lam[1:])[:, None]
    )
    x = np.einsum("ik,fkc->fic", vec[:, 1:], amp) + rng.normal(0, 5.0, size=(n_frames, 1, 3))  # random drift
    forces = -np.einsum("ij,fjc->fic", lap_graph, x)
    lap_u = np.full(n_frames, 3.0 * np.trace(lap_graph))
    t_conf, err = configurational_temperature_error(forces, lap_u, n_boot=300)
    assert abs(t_conf - temperature_K) < 4.0 * err and err < 15.0
    t_vir = virial_temperature(x, forces)
    assert t_vir == pytest.approx(temperature_K, rel=0.03)  # SE of 3(N-1)=24 dofs over 4000 frames: ~1.8%


def test_configurational_temperature_rejects_bad_shapes() -> None:
    with pytest.raises(DataError):
        configurational_temperature(np.zeros((3, 2, 3)), np.ones(4))
    assert math.isnan(configurational_temperature(np.ones((3, 2, 3)), -np.ones(3)))


def test_block_bootstrap_widens_for_correlated_frames() -> None:
    rng = np.random.default_rng(2)
    # Each value repeated 20 times: plain bootstrap underestimates the error by about sqrt(20).
    series = np.repeat(rng.normal(size=200), 20)[:, None]
    plain = block_bootstrap_means(series, block_size=1, n_boot=500).std()
    blocked = block_bootstrap_means(series, block_size=40, n_boot=500).std()
    assert blocked / plain == pytest.approx(math.sqrt(20.0), rel=0.3)
    assert blocked == pytest.approx(1.0 / math.sqrt(200), rel=0.25)


# --- the real data ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ethanol_frames(synthetic_andersx: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All distinct ethanol frames of the andersx split files: species, positions, energies.

    The real files when present, else synthetic ones (conftest.write_andersx)."""
    folder = ANDERSX if ANDERSX.exists() else synthetic_andersx
    xs, es, ids = [], [], []
    for part in ("train", "test"):
        for k in range(1, 6):
            d = np.load(folder / f"rmd17_ethanol_{part}_0{k}.npz")
            xs.append(d["coords"])
            es.append(d["energies"])
            ids.append(d["old_indices"])
            z = d["nuclear_charges"]
    _, first = np.unique(np.concatenate(ids), return_index=True)  # train splits share some frames
    return z, np.concatenate(xs)[first], np.concatenate(es)[first]


def _halves(n: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(0).permutation(n)
    return perm[: n // 2], perm[n // 2 :]


def test_two_halves_of_dft_frames_score_near_identical(ethanol_frames: tuple[np.ndarray, ...]) -> None:
    z, x, e = ethanol_frames
    assert len(x) > 9000
    a, b = _halves(len(x))
    metrics, arrays = distribution_metrics(z, x[a], e[a], x[b], e[b], 500.0)
    assert metrics["energy_ks"][0] < 0.06
    assert metrics["hr_mae"][0] < 0.05
    for name in ("hydroxyl", "methyl"):
        assert metrics[f"dihedral_profile_error.{name}"][1] == "kcal/mol"
        assert metrics[f"dihedral_profile_error.{name}"][0] < 0.3
        assert metrics[f"dihedral_js.{name}"][0] < 0.01
    assert metrics["pair_hist_mae_max"][0] < 0.2
    assert metrics["share_outside_support"][0] < 0.002
    # The stored arrays reproduce the stored numbers (the report draws exactly these).
    assert hr_mae(arrays["hr_sample"], arrays["hr_ref"], arrays["hr_edges"]) == metrics["hr_mae"][0]
    err = profile_error(arrays["dihedral_F_sample.methyl"], arrays["dihedral_F_ref.methyl"])
    assert err == metrics["dihedral_profile_error.methyl"][0]
    assert arrays["dihedral_atoms.methyl"].shape == (3, 4)
    assert arrays["pair_hist_sample"].shape == (len(arrays["pair_labels"]), 250)
    assert arrays["dihedral2d_sample"].shape == (36, 36)


def test_noisy_or_stretched_frames_score_clearly_worse(ethanol_frames: tuple[np.ndarray, ...]) -> None:
    z, x, e = ethanol_frames
    a, b = _halves(len(x))
    floor = distribution_metrics(z, x[a], None, x[b], None, 500.0).metrics
    noisy = x[a] + np.random.default_rng(1).normal(0.0, 0.1, x[a].shape)
    m_noise = distribution_metrics(z, noisy, None, x[b], None, 500.0).metrics
    assert m_noise["hr_mae"][0] > 4.0 * floor["hr_mae"][0]
    assert m_noise["pair_hist_mae_mean"][0] > 5.0 * floor["pair_hist_mae_mean"][0]
    # Stretch the O-H bond by 0.3 Å (move H8 along O2->H8): one pair moves out of its support.
    stretched = x[a].copy()
    oh = stretched[:, 8] - stretched[:, 2]
    stretched[:, 8] += 0.3 * oh / np.linalg.norm(oh, axis=-1, keepdims=True)
    m_str = distribution_metrics(z, stretched, None, x[b], None, 500.0).metrics
    assert m_str["hr_mae"][0] > 3.0 * floor["hr_mae"][0]
    assert m_str["pair_hist_mae.O2-H8"][0] > 1.9  # the two O-H histograms barely overlap
    assert m_str["pair_hist_mae.C0-C1"][0] < 0.1  # the untouched bond still matches


def test_non_finite_sample_frames_are_dropped_and_counted(ethanol_frames: tuple[np.ndarray, ...]) -> None:
    z, x, e = ethanol_frames
    sample, energies = x[:400].copy(), e[:400].copy()
    sample[7, 3] = np.inf
    metrics, _ = distribution_metrics(z, sample, energies, x[400:2400], e[400:2400], 500.0)
    assert metrics["share_nonfinite"][0] == pytest.approx(1 / 400)
    assert metrics["n_sample_frames"][0] == 399.0
    with pytest.raises(DataError, match="one value per frame"):
        distribution_metrics(z, sample, energies[:10], x[400:2400], e[400:2400], 500.0)


@pytest.mark.shared
def test_virial_temperature_tells_which_potential_sampled_the_frames() -> None:
    """rMD17 frames are 500 K MD17 (PBE+vdW-TS) frames relabelled with PBE/def2-SVP.

    Generalised equipartition with the original MD17 forces gives the MD17 thermostat's 500 K
    (542 +- 23 K over all 9633 distinct frames, 566 K over these 5000); with the rMD17 forces it
    is far off (-86 K and -62 K), because the frames carry a mean force of the new level of
    theory. The positions are the same in both cases.
    """
    require_shared(ANDERSX)
    x, f_new, f_old = [], [], []
    for k in range(1, 6):
        d = np.load(ANDERSX / f"rmd17_ethanol_test_0{k}.npz")  # the test splits are disjoint
        x.append(d["coords"])
        f_new.append(d["forces"])
        f_old.append(d["old_forces"])
    pos = np.concatenate(x)
    t_old = virial_temperature(pos, np.concatenate(f_old))
    t_new = virial_temperature(pos, np.concatenate(f_new))
    assert 430.0 < t_old < 650.0  # 5000 frames: standard error about 32 K
    assert t_new < 200.0
