"""Distance observables: pair distances, h(r) and its MAE, per-pair histograms, support test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crmse_cli.analysis.observables import (
    all_pairs,
    frame_pair_distances,
    geminal_hh_pairs,
    hr_histogram,
    hr_mae,
    min_pair_distance_per_frame,
    outside_support,
    pair_histograms,
    pairs_that_matter,
)
from crmse_cli.data.graph import bond_graph
from crmse_cli.errors import DataError


def _random_frames(n_frames: int, n_atoms: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.5, size=(n_frames, n_atoms, 3))


def test_frame_pair_distances_match_a_loop() -> None:
    x = _random_frames(7, 5)
    d = frame_pair_distances(x)
    pairs = all_pairs(5)
    assert d.shape == (7, 10)
    for f in range(7):
        for k, (i, j) in enumerate(pairs):
            assert d[f, k] == pytest.approx(np.sqrt(np.sum((x[f, i] - x[f, j]) ** 2)), rel=1e-12)


def test_hr_integrates_to_one_and_places_a_known_distance() -> None:
    # Two atoms 1.234 Å apart: all mass in the bin (1.22, 1.24].
    x = np.array([[[0.0, 0.0, 0.0], [1.234, 0.0, 0.0]]] * 3)
    edges, h = hr_histogram(x)
    assert edges.shape == (501,) and h.shape == (500,)
    assert np.sum(h * np.diff(edges)) == pytest.approx(1.0)
    assert np.argmax(h) == 61 and edges[61] < 1.234 <= edges[62]
    # Distances beyond 10 Å are missing mass, not renormalised away.
    far = np.array([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [20.0, 0.0, 0.0]]])
    e2, h2 = hr_histogram(far)
    assert np.sum(h2 * np.diff(e2)) == pytest.approx(1.0 / 3.0)


def test_hr_mae_is_zero_for_identical_and_two_for_disjoint() -> None:
    x = _random_frames(50, 6)
    edges, h = hr_histogram(x)
    assert hr_mae(h, h.copy(), edges) == 0.0
    near = np.array([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    far = np.array([[[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]]])
    assert hr_mae(hr_histogram(near)[1], hr_histogram(far)[1], edges) == pytest.approx(2.0)
    with pytest.raises(DataError):
        hr_mae(h, h[:-1], edges)


def test_hr_rejects_non_finite_frames() -> None:
    x = _random_frames(3, 4)
    x[1, 2, 0] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        hr_histogram(x)


def test_pair_histograms_put_each_pair_in_its_own_row() -> None:
    x = np.zeros((4, 3, 3))
    x[:, 1, 0] = 1.01  # pair (0, 1) at 1.01 Å
    x[:, 2, 1] = 2.55  # pair (0, 2) at 2.55 Å
    edges = np.linspace(0.0, 5.0, 251)
    h = pair_histograms(x, np.array([[0, 1], [0, 2]]), edges)
    assert h.shape == (2, 250)
    assert np.sum(h * np.diff(edges), axis=1) == pytest.approx([1.0, 1.0])
    assert np.argmax(h[0]) == 50 and np.argmax(h[1]) == 127
    with pytest.raises(DataError, match="uniform"):
        pair_histograms(x, np.array([[0, 1]]), np.array([0.0, 1.0, 3.0]))


def test_pairs_that_matter_for_ethanol(ethanol_npz: Path) -> None:
    data = np.load(ethanol_npz)
    z, x = data["nuclear_charges"], data["coords"][:200]
    pairs = pairs_that_matter(z, x)
    bonds = {tuple(b) for b in bond_graph(z, x).tolist()}
    values = list(pairs.values())
    # 8 bonds (C-C, C-O, O-H, 5 C-H), then 4 geminal H-H pairs (3 on CH3, 1 on CH2).
    assert len(pairs) == 12 and set(values[:8]) == bonds
    for label, (i, j) in list(pairs.items())[8:]:
        assert z[i] == 1 and z[j] == 1 and label.startswith("H")
        heavy_i = {a + b - i for a, b in bonds if i in (a, b)}
        heavy_j = {a + b - j for a, b in bonds if j in (a, b)}
        assert heavy_i == heavy_j and z[next(iter(heavy_i))] == 6
    assert "O2-H8" in pairs and "C0-C1" in pairs
    assert geminal_hh_pairs(z, bond_graph(z, x)).shape == (4, 2)


def test_outside_support_flags_a_collapsed_pair() -> None:
    rng = np.random.default_rng(1)
    ref = np.array([[0.0, 0, 0], [1.5, 0, 0], [0, 1.5, 0]]) + rng.normal(0, 0.02, (100, 3, 3))
    sample = ref[:10].copy()
    sample[3, 2] = sample[3, 1] + np.array([0.9, 0.0, 0.0])  # pair (1, 2) at 0.9 Å, ref min ~2.0 Å
    flags = outside_support(sample, ref, margin_A=0.3)
    assert flags.tolist() == [i == 3 for i in range(10)]
    assert min_pair_distance_per_frame(sample)[3] == pytest.approx(0.9)


def test_support_test_is_the_one_behind_outside_support() -> None:
    """The torch test (monitor, chains) and its numpy face flag the same frames, in any dtype."""
    import torch

    from crmse_cli.data.graph import min_pair_distances
    from crmse_cli.sampling.support import SupportTest

    ref, sample = _random_frames(50, 6, seed=2), _random_frames(400, 6, seed=3)
    flags = outside_support(sample, ref, margin_A=0.3)
    assert 0 < flags.sum() < len(flags)
    test = SupportTest(torch.from_numpy(min_pair_distances(ref)), 0.3)
    assert test.floor_A.shape == (15,) and test.pairs.tolist() == all_pairs(6).T.tolist()
    x = torch.from_numpy(sample)
    assert test.outside(x).tolist() == flags.tolist()
    assert test.below(test.distances(x)).tolist() == flags.tolist()
    assert test.outside(x.float()).tolist() == flags.tolist()  # float32 frames: floors cast to float32


def test_hr_of_ten_thousand_aspirin_frames_equals_that_of_its_copies(aspirin_npz: Path) -> None:
    """A large frame set (chunked internally) gives the histogram of its distinct frames.

    No wall-clock assertion here: speed is measured in benchmarks, not in unit tests."""
    x = np.load(aspirin_npz)["coords"]
    big = np.concatenate([x] * 10)
    edges, h = hr_histogram(big)
    _, h_once = hr_histogram(x)
    assert big.shape == (10000, 21, 3)
    assert np.sum(h * np.diff(edges)) == pytest.approx(1.0)  # aspirin spans < 10 Å
    np.testing.assert_allclose(h, h_once, rtol=1e-9, atol=1e-12)
