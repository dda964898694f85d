"""The samplers against physics: harmonic variance, velocity Verlet, energy conservation,
thermostat temperature, reproducibility, and the observer loop."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy import constants as C

from crmse_cli import units
from crmse_cli.errors import CrmseError
from crmse_cli.sampling import (
    ULA,
    LangevinBAOAB,
    LangevinState,
    ULAState,
    init_velocities,
    kinetic_temperature,
    masses_from_species,
    ula_steps,
)

ForceFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
F64 = torch.float64


def harmonic(k: float, x0: torch.Tensor | float = 0.0) -> ForceFn:
    """U = k/2 |x - x0|^2 per replica (kcal/mol, k in kcal/mol/Å^2)."""

    def force_fn(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = x - x0
        return 0.5 * k * (d * d).sum(dim=(1, 2)), -k * d

    return force_fn


def autograd_force_fn(energy: Callable[[torch.Tensor], torch.Tensor]) -> ForceFn:
    def force_fn(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            pos = x.detach().requires_grad_(True)
            e = energy(pos)
            (grad,) = torch.autograd.grad(e.sum(), pos)
        return e.detach(), -grad

    return force_fn


def morse_cluster(x: torch.Tensor) -> torch.Tensor:
    """Anharmonic: Morse pair potential over all pairs (D 20 kcal/mol, a 1.8/Å, r0 1.5 Å)."""
    n = x.shape[1]
    i, j = torch.triu_indices(n, n, offset=1)
    r = (x[:, i] - x[:, j]).norm(dim=-1)
    return (20.0 * (1.0 - torch.exp(-1.8 * (r - 1.5))) ** 2).sum(dim=1)


def cluster_start(b: int, seed: int) -> torch.Tensor:
    """B distorted tetrahedra with edges near 1.5 Å."""
    g = torch.Generator().manual_seed(seed)
    tet = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]], dtype=F64)
    tet = tet * 1.5 / math.sqrt(8.0)
    return tet[None] + 0.05 * torch.randn((b, 4, 3), generator=g, dtype=F64)


def test_acceleration_unit_against_scipy() -> None:
    # 1 kcal/mol expressed in amu Å^2 / fs^2, from CODATA.
    kcal_mol_in_amu_a2_fs2 = 4184.0 / C.N_A / (C.atomic_mass * 1e-20 / 1e-30)
    assert math.isclose(units.AMU_A2_FS2_PER_KCAL_PER_MOL, kcal_mol_in_amu_a2_fs2, rel_tol=1e-7)
    assert math.isclose(units.AMU_A2_FS2_PER_KCAL_PER_MOL, 4.184e-4, rel_tol=1e-6)


def test_oscillation_period_has_the_right_units() -> None:
    """A carbon on a 50 kcal/mol/Å^2 spring oscillates at omega = sqrt(k/m) in SI units."""
    k, m = 50.0, 12.0
    omega_si = math.sqrt(k * 4184.0 / C.N_A * 1e20 / (m * C.atomic_mass))  # rad/s
    omega = omega_si * 1e-15  # rad/fs
    md = LangevinBAOAB(harmonic(k), torch.tensor([m], dtype=F64), 300.0, 0.05, friction_per_fs=0.0)
    x0 = torch.tensor([[[0.1, 0.0, 0.0]]], dtype=F64)
    state = md.run(md.init_state(x0, torch.zeros_like(x0)), 2000)  # 100 fs
    expected = 0.1 * math.cos(omega * state.time_fs)
    assert state.positions[0, 0, 0].item() == pytest.approx(expected, abs=1e-6)


def _block_se(values: torch.Tensor) -> float:
    """Standard error of the mean of independent replica estimates."""
    return float(values.std() / math.sqrt(values.numel()))


def test_baoab_harmonic_variance_and_temperature() -> None:
    """Positional variance kT/k (exact for BAOAB) and <T_kin> = T over 256 replicas."""
    k, temp, m = 100.0, 300.0, 12.0
    b, n = 256, 4
    var_exact = units.kT(temp) / k
    g = torch.Generator().manual_seed(1)
    md = LangevinBAOAB(
        harmonic(k), torch.full((n,), m, dtype=F64), temp, 2.0, friction_per_fs=0.05, generator=g
    )
    x = math.sqrt(var_exact) * torch.randn((b, n, 3), generator=g, dtype=F64)  # start in equilibrium
    v = init_velocities(md.masses_amu, temp, b, g, dtype=F64, zero_com_momentum=False)
    sq, tk, count = torch.zeros(b, dtype=F64), torch.zeros(b, dtype=F64), 0
    for state in md.irun(md.init_state(x, v), 3000):
        if state.step > 100 and state.step % 5 == 0:
            sq += state.positions.pow(2).mean(dim=(1, 2))
            tk += md.kinetic_temperature(state, remove_com=False)
            count += 1
    var_rep, t_rep = sq / count, tk / count
    assert abs(var_rep.mean().item() - var_exact) < 4 * _block_se(var_rep)
    assert var_rep.mean().item() == pytest.approx(var_exact, rel=0.02)
    assert abs(t_rep.mean().item() - temp) < max(4 * _block_se(t_rep), 0.02 * temp)


def test_ula_harmonic_variance_matches_its_discrete_law() -> None:
    """ULA on U = k/2 x^2 has stationary variance (kT/k) / (1 - eta beta k / 2): the O(eta) bias
    is resolved, and the same run agrees with kT/k to that bias."""
    k, temp, b, n = 100.0, 300.0, 256, 4
    kt = units.kT(temp)
    a = 0.05  # eta * beta * k
    eta = a * kt / k
    var_ula = (kt / k) / (1.0 - a / 2.0)
    g = torch.Generator().manual_seed(2)
    x = math.sqrt(var_ula) * torch.randn((b, n, 3), generator=g, dtype=F64)
    sq, count = torch.zeros(b, dtype=F64), 0

    def observe(state: ULAState) -> None:
        nonlocal sq, count
        if state.step % 5 == 0:
            sq = sq + state.positions.pow(2).mean(dim=(1, 2))
            count += 1

    ula_steps(harmonic(k), x, 3000, eta_A2=eta, temperature_K=temp, generator=g, observer=observe)
    var_rep = sq / count
    se = _block_se(var_rep)
    assert abs(var_rep.mean().item() - var_ula) < 4 * se
    assert abs(var_rep.mean().item() - kt / k) > 4 * se  # the estimate is sharp enough to see the bias
    assert var_rep.mean().item() == pytest.approx(kt / k, rel=0.04)


def test_zero_friction_is_velocity_verlet() -> None:
    """gamma = 0 reproduces a hand-written velocity Verlet to round-off on an anharmonic cluster."""
    masses = torch.tensor([12.0, 1.0, 16.0, 1.0], dtype=F64)
    force_fn = autograd_force_fn(morse_cluster)
    dt = 0.5
    x = cluster_start(8, seed=3)
    v = init_velocities(masses, 500.0, 8, torch.Generator().manual_seed(4), dtype=F64)
    md = LangevinBAOAB(force_fn, masses, 500.0, dt, friction_per_fs=0.0)
    state = md.run(md.init_state(x, v), 200)

    conv = units.AMU_A2_FS2_PER_KCAL_PER_MOL / masses[None, :, None]
    _, f = force_fn(x)
    for _ in range(200):
        a = f * conv
        x = x + dt * v + 0.5 * dt * dt * a
        _, f = force_fn(x)
        v = v + 0.5 * dt * (a + f * conv)
    assert torch.allclose(state.positions, x, rtol=0, atol=1e-9)
    assert torch.allclose(state.velocities, v, rtol=0, atol=1e-11)
    assert state.step == 200 and state.time_fs == pytest.approx(100.0)


def _energy_error(dt: float, n_steps: int) -> float:
    masses = torch.tensor([12.0, 1.0, 16.0, 1.0], dtype=F64)
    md = LangevinBAOAB(autograd_force_fn(morse_cluster), masses, 500.0, dt, friction_per_fs=0.0)
    v = init_velocities(masses, 500.0, 16, torch.Generator().manual_seed(5), dtype=F64)
    state = md.init_state(cluster_start(16, seed=6), v)
    e0 = md.total_energy(state)
    worst = torch.zeros_like(e0)
    for s in md.irun(state, n_steps):
        worst = torch.maximum(worst, (md.total_energy(s) - e0).abs())
    return float(worst.max())


def test_nve_energy_is_conserved_with_second_order_error() -> None:
    """Over 200 fs the total energy stays within 0.005 kcal/mol at 0.1 fs, and the error shrinks
    as dt^2 (x4 smaller when dt halves), the signature of a symplectic second-order scheme."""
    err_coarse = _energy_error(0.2, 1000)
    err_fine = _energy_error(0.1, 2000)
    assert err_fine < 0.005
    assert 2.5 < err_coarse / err_fine < 6.0


def test_thermostat_heats_a_cold_molecule_to_its_target() -> None:
    """Springs between all pairs (a free molecule): from rest, <T_kin (3N-3 dof)> -> T within 2%."""
    masses = masses_from_species([6, 8, 1, 1, 1])
    force_fn = autograd_force_fn(morse_cluster)
    temp, b = 500.0, 64
    ref = torch.tensor([[0.0, 0, 0], [1.5, 0, 0], [0, 1.5, 0], [0, 0, 1.5], [1.1, 1.1, 1.1]], dtype=F64)
    md = LangevinBAOAB(
        force_fn, masses, temp, 0.25, friction_per_fs=0.05, generator=torch.Generator().manual_seed(7)
    )
    state = md.init_state(ref.expand(b, 5, 3).clone(), torch.zeros(b, 5, 3, dtype=F64))
    temps = [md.kinetic_temperature(s).mean().item() for s in md.irun(state, 2400) if s.step > 400]
    assert md.kinetic_temperature(state).abs().max().item() == 0.0
    assert np.mean(temps) == pytest.approx(temp, rel=0.02)


def test_initial_velocities_have_zero_com_momentum_and_right_temperature() -> None:
    masses = masses_from_species([6, 6, 8, 1, 1, 1, 1, 1, 1])
    v = init_velocities(masses, 500.0, 4000, torch.Generator().manual_seed(8), dtype=F64)
    momentum = (masses[None, :, None] * v).sum(dim=1)
    assert momentum.abs().max().item() < 1e-14
    t = kinetic_temperature(v, masses)  # 3N - 3 degrees of freedom
    assert t.mean().item() == pytest.approx(500.0, rel=0.01)
    assert init_velocities(masses, 500.0, 2, torch.Generator()).dtype == torch.float32


def test_seeded_runs_are_bit_identical_and_seeds_differ() -> None:
    masses = torch.tensor([12.0, 1.0, 16.0, 1.0])

    def langevin(seed: int) -> LangevinState:
        md = LangevinBAOAB(
            autograd_force_fn(morse_cluster), masses, 500.0, 0.5, 0.01, torch.Generator().manual_seed(seed)
        )
        return md.run(md.init_state(cluster_start(4, 0).float()), 50)

    a, b, c = langevin(11), langevin(11), langevin(12)
    assert a.positions.dtype == torch.float32
    assert torch.equal(a.positions, b.positions) and torch.equal(a.velocities, b.velocities)
    assert not torch.equal(a.positions, c.positions)

    def ula(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return ula_steps(
            harmonic(10.0), cluster_start(4, 0), 50, eta_A2=1e-3, temperature_K=500.0, generator=g
        )[0]

    assert torch.equal(ula(1), ula(1)) and not torch.equal(ula(1), ula(2))
    # The sampler class and the trainer's function are the same chain.
    sampler = ULA(harmonic(10.0), 500.0, 1e-3, torch.Generator().manual_seed(1))
    assert torch.equal(sampler.run(sampler.init_state(cluster_start(4, 0)), 50).positions, ula(1))


def test_ula_returns_energy_of_returned_positions_and_keeps_no_graph() -> None:
    k = 10.0
    start = cluster_start(3, 0).requires_grad_(True)
    x, e = ula_steps(harmonic(k), start, 5, eta_A2=1e-3, temperature_K=300.0, generator=torch.Generator())
    assert not x.requires_grad and not e.requires_grad
    assert torch.allclose(e, 0.5 * k * x.pow(2).sum(dim=(1, 2)))
    with pytest.raises(CrmseError):
        ula_steps(harmonic(k), start, 5, eta_A2=-1.0, temperature_K=300.0, generator=torch.Generator())


def test_observers_every_stop_and_interrupt() -> None:
    md = LangevinBAOAB(harmonic(10.0), torch.ones(2), 300.0, 1.0, 0.1, torch.Generator().manual_seed(0))
    seen: list[int] = []
    md.attach(lambda s: seen.append(s.step), every=3)
    state = md.run(md.init_state(torch.zeros(2, 2, 3)), 10)
    assert seen == [0, 3, 6, 9] and state.step == 10
    md.run(state, 5)  # a continued run does not show step 10 again
    assert seen == [0, 3, 6, 9, 12, 15]

    md.attach(lambda s: md.request_stop() if s.step == 17 else None)
    state = md.run(state, 100)
    assert state.step == 17 and not md.interrupted

    def interrupt(s: LangevinState) -> None:
        if s.step == 20:
            raise KeyboardInterrupt

    md.attach(interrupt)
    state = md.run(state, 100)
    assert md.interrupted and state.step == 20 and torch.isfinite(state.positions).all()
    with pytest.raises(CrmseError):
        md.attach(print, every=0)
