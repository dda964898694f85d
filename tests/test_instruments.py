"""Instruments of repair vs softening on analytic models (springs + torsion), the virial
temperature on exact samples, and the pooled Fisher test."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from scipy.stats import fisher_exact

from crmse_cli.analysis.instruments import (
    compare_hessians,
    energy_forces_np,
    energy_lift,
    hessian_np,
    internal_basis,
    kabsch,
    mode_projections,
    normal_modes,
    slope_through_origin,
)
from crmse_cli.analysis.stats import virial_temperature_error
from crmse_cli.analysis.study import PooledStability, fisher_left, groups_table, pool_stability
from crmse_cli.metric import Metric
from crmse_cli.units import KB_KCAL_PER_MOL_K

# A bent 4-atom chain (H-O-O-H like), Å: stiff springs on bonds and 1-3 pairs, one soft torsion.
CHAIN = np.array([[0.9, 0.5, 0.3], [0.0, 0.7, 0.0], [1.2, 0.0, 0.1], [1.6, -0.6, 0.9]])
SPRINGS = ((0, 1), (1, 2), (2, 3), (0, 2), (1, 3))
K_SPRING = 300.0  # kcal/mol/Å^2
K_TORSION = 2.0  # kcal/mol


def dihedral(x: torch.Tensor) -> torch.Tensor:
    """(B,) dihedral angle 0-1-2-3 of positions (B, 4, 3), rad."""
    b0, b1, b2 = x[:, 0] - x[:, 1], x[:, 2] - x[:, 1], x[:, 3] - x[:, 2]
    b1n = b1 / b1.norm(dim=-1, keepdim=True)
    v = b0 - (b0 * b1n).sum(-1, keepdim=True) * b1n
    w = b2 - (b2 * b1n).sum(-1, keepdim=True) * b1n
    return torch.atan2((torch.cross(b1n, v, dim=-1) * w).sum(-1), (v * w).sum(-1))


def toy_model(torsion_scale: float = 1.0, spring_scale: float = 1.0):  # noqa: ANN201
    """Energy callable with its minimum at CHAIN; ``torsion_scale`` scales the soft mode only."""
    x0 = torch.as_tensor(CHAIN)[None]
    idx = torch.tensor(SPRINGS)
    r0 = (x0[:, idx[:, 0]] - x0[:, idx[:, 1]]).norm(dim=-1)
    phi0 = dihedral(x0)

    def energy(x: torch.Tensor) -> torch.Tensor:
        r = (x[:, idx[:, 0]] - x[:, idx[:, 1]]).norm(dim=-1)
        springs = spring_scale * K_SPRING * ((r - r0) ** 2).sum(-1)
        return springs + torsion_scale * K_TORSION * (1 - torch.cos(dihedral(x) - phi0)) - 50.0

    return energy


def _rotation(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_hessian_matches_finite_differences_and_has_six_rigid_zeros() -> None:
    f = toy_model()
    h = hessian_np(f, CHAIN)
    eps, n = 1e-5, CHAIN.size
    fd = np.zeros((n, n))
    for k in range(n):
        d = np.zeros(n)
        d[k] = eps
        _, fp = energy_forces_np(f, (CHAIN.ravel() + d).reshape(1, 4, 3))
        _, fm = energy_forces_np(f, (CHAIN.ravel() - d).reshape(1, 4, 3))
        fd[:, k] = -(fp - fm).ravel() / (2 * eps)
    np.testing.assert_allclose(h, fd, atol=1e-4 * np.abs(h).max())
    assert np.abs(np.linalg.eigvalsh(h)[np.argsort(np.abs(np.linalg.eigvalsh(h)))][:6]).max() < 1e-6
    modes = normal_modes(h, CHAIN)
    assert modes.eigenvalues.shape == (6,) and modes.eigenvalues[0] > 0
    b = internal_basis(CHAIN)
    np.testing.assert_allclose(b.T @ b, np.eye(6), atol=1e-12)


def test_hessian_ratio_is_one_against_itself_and_the_set_factor_for_a_scaled_soft_mode() -> None:
    start = CHAIN + 0.03 * np.random.default_rng(0).normal(size=CHAIN.shape)
    same = compare_hessians(toy_model(), toy_model(), start)
    np.testing.assert_allclose(same.ratios, 1.0, rtol=1e-6)
    assert same.minimum_rmsd_A < 1e-4
    for factor in (0.5, 0.7):
        soft = compare_hessians(toy_model(torsion_scale=factor), toy_model(), start)
        assert soft.soft_ratio(1) == pytest.approx(factor, rel=0.02)  # the torsion follows the factor
        assert soft.stiff_ratio(2) == pytest.approx(1.0, rel=0.01)  # stretches untouched
    stiff = compare_hessians(toy_model(spring_scale=1.3), toy_model(), start)
    assert stiff.stiff_ratio(2) == pytest.approx(1.3, rel=0.02)
    assert stiff.soft_ratio(1) == pytest.approx(1.0, rel=0.05)


def test_mass_weighted_modes_give_the_same_factor() -> None:
    masses = np.array([1.008, 15.999, 15.999, 1.008])
    cmp = compare_hessians(toy_model(torsion_scale=0.6), toy_model(), CHAIN, masses=masses)
    assert cmp.unit == "kcal/mol/A^2/amu"
    assert cmp.soft_ratio(1) == pytest.approx(0.6, rel=0.02)


def _twist(theta: float) -> np.ndarray:
    """CHAIN with atom 3 turned by ``theta`` rad about the 1-2 axis: a pure torsion (springs unstretched)."""
    axis = (CHAIN[2] - CHAIN[1]) / np.linalg.norm(CHAIN[2] - CHAIN[1])
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * k @ k
    out = CHAIN.copy()
    out[3] = CHAIN[1] + rot @ (CHAIN[3] - CHAIN[1])
    return out


def test_force_slopes_on_soft_modes_read_the_scale_in_any_orientation() -> None:
    rng = np.random.default_rng(1)
    ref = toy_model()
    cmp = compare_hessians(ref, ref, CHAIN)
    twisted = np.stack([_twist(t) for t in rng.uniform(-0.4, 0.4, size=30)])
    turned = np.stack([f @ _rotation(i).T + rng.normal(size=3) for i, f in enumerate(twisted)])
    soft_vec = cmp.ref_vectors[:, :1]
    _, f_dft = energy_forces_np(ref, turned)
    _, f_soft = energy_forces_np(toy_model(torsion_scale=0.5), turned)
    p_dft = mode_projections(turned, f_dft, cmp.ref_minimum.positions, soft_vec)
    p_soft = mode_projections(turned, f_soft, cmp.ref_minimum.positions, soft_vec)
    # Rigidly turned frames project as the unturned ones: the instrument ignores orientation.
    _, f_plain = energy_forces_np(ref, twisted)
    np.testing.assert_allclose(p_dft, mode_projections(twisted, f_plain, CHAIN, soft_vec), atol=1e-8)
    assert np.abs(p_dft).max() > 0.1
    assert slope_through_origin(p_dft, p_dft)[0] == pytest.approx(1.0)
    assert slope_through_origin(p_soft, p_dft)[0] == pytest.approx(0.5, rel=1e-6)
    # Stiffer springs do not change forces along a pure torsion: the slope stays 1.
    _, f_stiff = energy_forces_np(toy_model(spring_scale=2.0), turned)
    p_stiff = mode_projections(turned, f_stiff, cmp.ref_minimum.positions, soft_vec)
    assert slope_through_origin(p_stiff, p_dft)[0] == pytest.approx(1.0, rel=1e-6)


def test_kabsch_recovers_a_rotation() -> None:
    rot = _rotation(3)
    moved = (CHAIN - CHAIN.mean(0)) @ rot.T + 2.0
    np.testing.assert_allclose(kabsch(moved, CHAIN), rot.T, atol=1e-10)
    batch = kabsch(np.stack([moved, CHAIN]), CHAIN)
    np.testing.assert_allclose(batch[1], np.eye(3), atol=1e-10)


def test_energy_lift_in_kT() -> None:
    kt = KB_KCAL_PER_MOL_K * 500.0
    lift = energy_lift(np.array([-40.0, -30.0]), -45.0, np.array([-60.0, -50.0]), -45.0, 500.0)
    np.testing.assert_allclose(lift.lift_kT, [20.0 / kt, 20.0 / kt])
    assert lift.median_lift_kT == pytest.approx(20.0 / kt)


def _anharmonic_samples(temperature_K: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact Boltzmann samples of two atoms with U = sum_d a r_d^2 + b r_d^4 (r = x2 - x1)."""
    a, b = 20.0, 15.0
    kt = KB_KCAL_PER_MOL_K * temperature_K
    grid = np.linspace(-2.0, 2.0, 400_001)
    cdf = np.cumsum(np.exp(-(a * grid**2 + b * grid**4) / kt))
    rng = np.random.default_rng(seed)
    r = np.interp(rng.random(size=(n, 3)) * cdf[-1], cdf, grid)  # inverse CDF, per dimension
    centre = rng.normal(size=(n, 1, 3))
    pos = centre + np.stack([-r / 2, r / 2], axis=1)
    grad = 2 * a * r + 4 * b * r**3  # dU/dr
    forces = np.stack([grad, -grad], axis=1)  # F1 = +dU/dr, F2 = -dU/dr
    return pos, forces


def test_virial_temperature_reads_the_set_temperature_on_exact_samples() -> None:
    pos, forces = _anharmonic_samples(500.0, 40_000, seed=0)
    t, err = virial_temperature_error(pos, forces, block_size=100, n_boot=300)
    assert 0 < err < 10.0
    assert abs(t - 500.0) < 4 * err
    hot_pos, hot_forces = _anharmonic_samples(650.0, 40_000, seed=1)
    t_hot, err_hot = virial_temperature_error(hot_pos, hot_forces, block_size=100, n_boot=300)
    assert abs(t_hot - 500.0) > 10 * err_hot  # samples at another temperature miss it
    assert abs(t_hot - 650.0) < 4 * err_hot


def test_fisher_pooling_matches_scipy_on_made_up_counts() -> None:
    seeds_a = [{"n_replicas": 64, "n_left": k} for k in (16, 20, 13)]
    seeds_b = [{"n_replicas": 64, "n_left": k} for k in (2, 1, 4)]
    a, b = pool_stability(seeds_a), pool_stability(seeds_b)
    assert (a.n_replicas, a.n_left, b.n_left) == (192, 49, 7)
    expected = fisher_exact([[143, 49], [185, 7]]).pvalue
    assert fisher_left(a, b) == pytest.approx(expected, rel=1e-12)
    assert fisher_left(a, PooledStability(192, 49)) == pytest.approx(1.0)
    lines = groups_table({"lambda0": seeds_a, "crmse": seeds_b})
    assert lines[-1].startswith("| stable replicas, pooled over seeds | 143/192 | 185/192 (Fisher p = ")
    assert f"{expected:.2g}" in lines[-1]
    assert not math.isnan(expected)


def test_virial_metrics_names_units_and_value() -> None:
    from crmse_cli.stages.evaluate import virial_metrics

    pos, forces = _anharmonic_samples(500.0, 4_000, seed=2)
    out = virial_metrics(None, np.array([1, 1]), pos, forces, "ref")
    assert set(out) == {"virial_temperature_ref_K", "virial_temperature_ref_K_err"}
    assert out["virial_temperature_ref_K"][1] == "K"
    t, err = out["virial_temperature_ref_K"][0], out["virial_temperature_ref_K_err"][0]
    assert abs(t - 500.0) < 4 * err


def test_table_command_pools_groups_from_the_registry(tmp_path: Any) -> None:
    from test_cli import crmse

    from crmse_cli.registry.store import Registry
    from crmse_cli.workspace import Workspace

    ws = Workspace.resolve(tmp_path / "home")
    reg = Registry.open(ws.ensure())
    ids = []
    for left, ks in ((16, 0.30), (20, 0.34), (2, 0.31)):
        run = reg.create_run(kind="evaluate", config={}, seed=0)
        reg.log_metrics(run.id, [Metric(name="n_replicas", value=64.0, unit="1"),
                                 Metric(name="n_left", value=float(left), unit="1"),
                                 Metric(name="energy_ks", value=ks, unit="1")])  # fmt: skip
        ids.append(run.id)
    proc = crmse(ws.home, "table", "--group", f"mse={ids[0]},{ids[1]}", "--group", f"crmse={ids[2]}")
    assert proc.returncode == 0, proc.stderr
    p = fisher_exact([[92, 36], [62, 2]]).pvalue
    assert f"| stable replicas, pooled over seeds | 92/128 | 62/64 (Fisher p = {p:.2g}) |" in proc.stdout
    assert "| energy KS vs reference | 0.32 ± 0.02 | 0.31 |" in proc.stdout
    plain = crmse(ws.home, "table", ids[0])
    assert "| energy KS vs reference | 0.3 |" in plain.stdout
    bad = crmse(ws.home, "table", "--group", "nolabel")
    assert bad.returncode == 1 and bad.stderr.startswith("error: --group")

    # A study outlives its workspace: export the table's runs, rebuild it in an empty workspace
    # with a new run beside the exported ones, and refuse what is not an export.
    export = tmp_path / "study.json"
    first = crmse(ws.home, "table", "--group", f"mse={ids[0]},{ids[1]}", "--export", str(export))
    assert first.returncode == 0, first.stderr
    other = Workspace.resolve(tmp_path / "later")
    reg2 = Registry.open(other.ensure())
    new = reg2.create_run(kind="evaluate", config={}, seed=1, name="crmse-s1")
    reg2.log_metrics(new.id, [Metric(name="n_replicas", value=64.0, unit="1"),
                              Metric(name="n_left", value=2.0, unit="1"),
                              Metric(name="energy_ks", value=0.31, unit="1")])  # fmt: skip
    again = crmse(
        other.home, "table", "--include", str(export), "-g", f"mse={ids[0]},{ids[1]}", "-g", "crmse=crmse-s1"
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout == proc.stdout
    missing = crmse(other.home, "table", "-g", f"mse={ids[0]}")
    assert missing.returncode == 1 and "not in the registry" in missing.stderr
    (tmp_path / "junk.json").write_text('{"runs": []}')
    junk = crmse(other.home, "table", "--include", str(tmp_path / "junk.json"), ids[0])
    assert junk.returncode == 1 and "not a crmse metrics export" in junk.stderr


def test_a_group_label_may_hold_an_equals_sign() -> None:
    from crmse_cli.errors import CrmseError
    from crmse_cli.stages.table import parse_group

    assert parse_group("λ = 0=run-a,run-b") == ("λ = 0", ["run-a", "run-b"])
    assert parse_group("mse=r1") == ("mse", ["r1"])
    for bad in ("nolabel", "=r1", "label=", "λ = 0="):
        with pytest.raises(CrmseError, match="--group"):
            parse_group(bad)
