"""Temperature estimators on exact samples: they read the set temperature, and miss another one."""

from __future__ import annotations

import numpy as np
import pytest

from crmse_cli.analysis.stats import (
    configurational_temperature_error,
    energy_spread_temperature,
    energy_spread_temperature_error,
    ensemble_check,
    virial_temperature_error,
)
from crmse_cli.units import KB_KCAL_PER_MOL_K

K_SPRING, R0, QUARTIC = 20.0, 1.0, 100.0  # kcal/mol/Å^2, Å, kcal/mol/Å^4: strongly anharmonic at 500 K


def _u(r: np.ndarray) -> np.ndarray:
    d = r - R0
    return 0.5 * K_SPRING * d**2 + QUARTIC * d**4


def _du(r: np.ndarray) -> np.ndarray:
    d = r - R0
    return K_SPRING * d + 4 * QUARTIC * d**3


def _d2u(r: np.ndarray) -> np.ndarray:
    return K_SPRING + 12 * QUARTIC * (r - R0) ** 2


def anharmonic_dimer(temperature_K: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact Boltzmann samples of two atoms bound by a quartic+harmonic U(r), by inverse CDF.

    The separation has density r^2 exp(-U(r)/kT) (the r^2 of the 3-D volume element); direction
    and centroid are uniform. Returns positions (n, 2, 3) Å, forces (n, 2, 3), laplacians (n,).
    """
    rng = np.random.default_rng(seed)
    grid = np.linspace(1e-4, 3.0, 400_001)
    w = grid**2 * np.exp(-_u(grid) / (KB_KCAL_PER_MOL_K * temperature_K))
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    r = np.interp(rng.random(n), cdf, grid)
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    c = rng.uniform(-5, 5, size=(n, 3))
    x = np.stack([c - 0.5 * r[:, None] * u, c + 0.5 * r[:, None] * u], axis=1)
    f1 = -_du(r)[:, None] * u  # on atom 1, along +u
    forces = np.stack([-f1, f1], axis=1)
    lap = 2.0 * (_d2u(r) + 2.0 * _du(r) / r)  # both atoms: U'' + 2 U'/r each
    return x, forces, lap


def spring_network(temperature_K: float, n: int, seed: int) -> tuple[np.ndarray, ...]:
    """Exact samples of U = sum_bonds k/2 |x_i - x_j - d_ij|^2 (5 atoms): Gaussian in 12 modes.

    Translation invariant, so the virial estimator applies; harmonic in 3 (N - 1) = 12 modes,
    so the energy-spread estimator is exact with n_modes = 12. Returns positions, forces,
    energies, laplacians.
    """
    rng = np.random.default_rng(seed)
    bonds = [(0, 1, 300.0), (1, 2, 150.0), (2, 3, 80.0), (3, 4, 40.0), (0, 2, 60.0), (1, 4, 20.0)]
    lap_mat = np.zeros((5, 5))
    for i, j, k in bonds:
        lap_mat[[i, j], [i, j]] += k
        lap_mat[i, j] -= k
        lap_mat[j, i] -= k
    lam, vec = np.linalg.eigh(lap_mat)
    lam, vec = lam[1:], vec[:, 1:]  # drop the translation
    kt = KB_KCAL_PER_MOL_K * temperature_K
    ref = rng.normal(size=(5, 3))
    coef = rng.normal(size=(n, 4, 3)) * np.sqrt(kt / lam)[None, :, None]
    dx = np.einsum("am,nmd->nad", vec, coef)
    x = ref + dx + rng.uniform(-3, 3, size=(n, 1, 3))
    forces = -np.einsum("ab,nbd->nad", lap_mat, dx)
    energies = 0.5 * np.einsum("nad,nad->n", dx, -forces) + 12.0
    return x, forces, energies, np.full(n, 3.0 * np.trace(lap_mat))


@pytest.mark.parametrize("drawn_K", [500.0, 730.0])
def test_estimators_read_the_temperature_of_anharmonic_samples(drawn_K: float) -> None:
    x, f, lap = anharmonic_dimer(drawn_K, 20_000, seed=1)
    for name, (t, err) in {
        "virial": virial_temperature_error(x, f),
        "configurational": configurational_temperature_error(f, lap),
    }.items():
        assert abs(t - drawn_K) < 3 * err, (name, t, err)
        assert err < 0.03 * drawn_K
        # The same estimate against 500 K: it reads 500 K only when the samples were drawn there.
        assert (abs(t - 500.0) < 3 * err) == (drawn_K == 500.0), (name, t, err)


def test_energy_spread_is_exact_for_harmonic_modes() -> None:
    _, _, e500, _ = spring_network(500.0, 20_000, seed=2)
    t, err = energy_spread_temperature_error(e500, n_modes=12)
    assert abs(t - 500.0) < 3 * err and err < 10.0
    _, _, e730, _ = spring_network(730.0, 20_000, seed=3)
    assert energy_spread_temperature(e730, 12) > 500.0 + 10 * err


def test_ensemble_check_passes_at_the_set_temperature_and_fails_hotter() -> None:
    x, f, e, lap = spring_network(500.0, 20_000, seed=4)
    ok = ensemble_check(x, f, e, 500.0, tconf=(f, lap), n_modes=12)
    assert ok.passed and [m.name for m in ok.estimates] == ["virial", "configurational", "energy_spread"]
    x, f, e, lap = spring_network(730.0, 20_000, seed=5)
    hot = ensemble_check(x, f, e, 500.0, tconf=(f, lap), n_modes=12)
    assert not hot.passed and not any(m.passed for m in hot.estimates)
    assert hot.to_dict()["passed"] is False and hot.to_dict()["virial"]["value_K"] > 600  # type: ignore[index]
