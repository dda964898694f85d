"""Physics tests of the potentials, written once and run for every architecture.

Invariance under rotation, translation and permutation of like atoms; forces equal to central
finite differences; smooth decay to exactly nothing at the cutoff; no gradient leaking between
the structures of a batch; far-apart fragments adding up; float32 agreeing with float64; the
ASE calculator and checkpoints reproducing the model.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from test_model_helpers import ethanol, potential, random_rotation

from crmse_cli.errors import CrmseError, DataError
from crmse_cli.model import collate, energy_and_forces, load_checkpoint, make_graph, save_checkpoint
from crmse_cli.model.ase_calculator import CrmseCalculator
from crmse_cli.units import EV_PER_KCAL_PER_MOL

ARCHITECTURES = ["painn", "schnet"]


@pytest.fixture(params=ARCHITECTURES)
def pot64(request: pytest.FixtureRequest) -> torch.nn.Module:
    return potential(request.param, dtype="float64")


def test_rotation_and_translation_invariance(pot64: torch.nn.Module) -> None:
    pos, species, _, _ = ethanol(3)
    rot = random_rotation(1)
    shift = torch.tensor([3.0, -1.5, 12.0], dtype=torch.float64)
    e, f = energy_and_forces(pot64, pos, species)
    e_rot, f_rot = energy_and_forces(pot64, pos @ rot.T + shift, species)
    assert f.abs().max() > 1.0  # the model does produce forces, so the check below means something
    torch.testing.assert_close(e_rot, e, rtol=0, atol=1e-8)
    torch.testing.assert_close(f_rot, f @ rot.T, rtol=0, atol=1e-9)


def test_permutation_of_like_atoms(pot64: torch.nn.Module) -> None:
    pos, species, _, _ = ethanol(2)
    # Swap the two carbons and shuffle the six hydrogens; oxygen stays.
    perm = torch.tensor([1, 0, 2, 8, 5, 3, 7, 4, 6])
    assert torch.equal(species[perm], species)
    e, f = energy_and_forces(pot64, pos, species)
    e_p, f_p = energy_and_forces(pot64, pos[:, perm], species)
    torch.testing.assert_close(e_p, e, rtol=0, atol=1e-8)
    torch.testing.assert_close(f_p, f[:, perm], rtol=0, atol=1e-9)


def test_forces_equal_central_finite_differences(pot64: torch.nn.Module) -> None:
    pos, species, _, _ = ethanol(1)
    # The constant shift (~1e5 kcal/mol) cannot change forces but would dominate the round-off
    # of the differences, so it is zeroed here.
    pot64.shift.zero_()
    h = 1e-5
    x0 = pos[0]
    steps = torch.eye(27, dtype=torch.float64).reshape(27, 9, 3) * h
    batch = torch.cat([x0 + steps, x0 - steps])  # (54, 9, 3): every coordinate displaced +-h
    e = energy_and_forces(pot64, batch, species)[0]
    fd = -(e[:27] - e[27:]) / (2 * h)
    _, f = energy_and_forces(pot64, pos, species)
    scale = f.abs().max()
    assert scale > 1.0
    assert (fd - f.reshape(-1)).abs().max() <= 1e-7 * scale


@pytest.mark.parametrize("envelope", ["polynomial", "cosine"])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_energy_and_forces_vanish_smoothly_at_the_cutoff(architecture: str, envelope: str) -> None:
    pot = potential(architecture, dtype="float64", envelope=envelope)
    rc = pot.config.cutoff_A
    species = torch.tensor([1, 1])

    def dimer(r: float) -> tuple[float, float]:
        pos = torch.tensor([[[0.0, 0.0, 0.0], [r, 0.0, 0.0]]], dtype=torch.float64)
        e, f = energy_and_forces(pot, pos, species)
        return float(e[0]), float(f[0, 1, 0])  # energy and the force along the bond on atom 1

    e_inf, _ = dimer(100.0)
    de = {delta: abs(dimer(rc - delta)[0] - e_inf) for delta in (1e-1, 1e-2, 1e-3)}
    fr = {delta: abs(dimer(rc - delta)[1]) for delta in (1e-1, 1e-2, 1e-3)}
    assert de[1e-1] > 1e-7 and fr[1e-1] > 1e-6  # the atoms do interact inside the cutoff
    # Polynomial envelope: E - E_inf ~ (rc - r)^3; cosine: ~ (rc - r)^2; dE/dr one power lower.
    assert de[1e-3] < 0.02 * de[1e-2] < 0.02**2 * de[1e-1]
    assert fr[1e-3] < 0.2 * fr[1e-2]
    assert de[1e-3] < 1e-5 and fr[1e-3] < 1e-3
    for r in (rc + 1e-6, rc + 0.5, 2 * rc, 50.0):
        e, f = dimer(r)
        assert e == e_inf and f == 0.0  # exactly constant beyond the cutoff


@pytest.mark.parametrize("use_collate", [False, True])
def test_no_gradient_leaks_between_structures(pot64: torch.nn.Module, use_collate: bool) -> None:
    pos, species, _, _ = ethanol(3)
    x = pos.clone().requires_grad_(True)
    if use_collate:
        graph = collate([(x[b], species) for b in range(3)])
    else:
        graph = make_graph(x, species)
    energy = pot64(graph)
    (grad,) = torch.autograd.grad(energy[1], x)
    assert grad[1].abs().max() > 1e-3
    assert torch.count_nonzero(grad[0]) == 0 and torch.count_nonzero(grad[2]) == 0


def test_far_apart_molecules_add_up(pot64: torch.nn.Module) -> None:
    pos, species, _, _ = ethanol(2)
    far = pos[1] + torch.tensor([30.0, 0.0, 0.0], dtype=torch.float64)
    both = torch.cat([pos[0], far]).unsqueeze(0)  # one structure of 18 atoms
    e_both, f_both = energy_and_forces(pot64, both, torch.cat([species, species]))
    e_a, f_a = energy_and_forces(pot64, pos[:1], species)
    e_b, f_b = energy_and_forces(pot64, far.unsqueeze(0), species)
    torch.testing.assert_close(e_both, e_a + e_b, rtol=1e-12, atol=1e-8)
    torch.testing.assert_close(f_both[0], torch.cat([f_a[0], f_b[0]]), rtol=0, atol=1e-10)


def test_float32_and_float64_agree(pot64: torch.nn.Module) -> None:
    pos, species, _, _ = ethanol(4)
    pot32 = copy.deepcopy(pot64).to(torch.float32)
    assert pot32.dtype == torch.float32
    e64, f64 = energy_and_forces(pot64, pos, species)
    e32, f32 = energy_and_forces(pot32, pos.float(), species)
    assert e32.dtype == torch.float32 and f32.dtype == torch.float32
    # Total energies are ~1e5 kcal/mol, whose float32 spacing is 0.008 kcal/mol.
    assert (e32.double() - e64).abs().max() < 0.05
    assert (f32.double() - f64).abs().max() < 1e-4 * f64.abs().max()


def test_ase_calculator_matches_model_in_ev(pot64: torch.nn.Module, tmp_path: Path) -> None:
    pos, species, _, _ = ethanol(1)
    e, f = energy_and_forces(pot64, pos, species)
    atoms = Atoms(numbers=species.numpy(), positions=pos[0].numpy())
    atoms.calc = CrmseCalculator(pot64)
    assert atoms.get_potential_energy() == pytest.approx(float(e[0]) * EV_PER_KCAL_PER_MOL, rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), f[0].numpy() * EV_PER_KCAL_PER_MOL, rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        atoms.get_potential_energy(force_consistent=True), atoms.get_potential_energy()
    )

    path = tmp_path / "model.pt"
    save_checkpoint(path, pot64)
    atoms.calc = CrmseCalculator(path)
    assert atoms.get_potential_energy() == pytest.approx(float(e[0]) * EV_PER_KCAL_PER_MOL, rel=1e-12)


def test_ase_calculator_rejects_unknown_species(pot64: torch.nn.Module) -> None:
    atoms = Atoms("NH3", positions=[[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    atoms.calc = CrmseCalculator(pot64)
    with pytest.raises(CrmseError, match=r"\[7\] unknown"):
        atoms.get_potential_energy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_checkpoint_round_trip_reproduces_energies_exactly(
    architecture: str, dtype: str, tmp_path: Path
) -> None:
    pot = potential(architecture, dtype=dtype)
    pos, species, _, _ = ethanol(3)
    pos = pos.to(pot.dtype)
    e, f = energy_and_forces(pot, pos, species)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, pot, extra={"epoch": 3})
    loaded, payload = load_checkpoint(path)
    e2, f2 = energy_and_forces(loaded, pos, species)
    assert torch.equal(e, e2) and torch.equal(f, f2)
    assert payload["extra"] == {"epoch": 3, "extra_version": 1}


def test_corrupt_checkpoint_is_a_data_error(tmp_path: Path) -> None:
    pot = potential("painn", dtype="float32")
    good = tmp_path / "good.pt"
    save_checkpoint(good, pot)
    blob = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(blob[: len(blob) // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 100)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    for path in (truncated, garbage, foreign):
        with pytest.raises(DataError) as info:
            load_checkpoint(path)
        assert "\n" not in str(info.value) and path.name in str(info.value)
