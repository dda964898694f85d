"""Unit tests of the model package: config, graphs, shift/scale, forces API, checkpoints."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from test_model_helpers import ethanol, potential

from crmse_cli import __version__, keys
from crmse_cli.config import from_dict, to_dict
from crmse_cli.errors import CrmseError, NotFoundError
from crmse_cli.fileio import sha256_file
from crmse_cli.model import (
    ModelConfig,
    build_potential,
    collate,
    energy_and_forces,
    force_field,
    forces_from_energy,
    laplacian,
    load_checkpoint,
    make_graph,
    save_checkpoint,
)
from crmse_cli.model import graph as graph_module
from crmse_cli.model.allocator import tune_allocator
from crmse_cli.model.graph import DENSE_N_ATOMS


def test_config_defaults_and_validation() -> None:
    cfg = ModelConfig()
    assert (cfg.architecture, cfg.features, cfg.layers, cfg.n_rbf) == ("painn", 64, 3, 20)
    assert (cfg.cutoff_A, cfg.envelope, cfg.envelope_p, cfg.dtype) == (5.0, "polynomial", 6, "float32")
    assert from_dict(ModelConfig, to_dict(cfg)) == cfg
    for bad in (
        {"architecture": "nequip"},
        {"envelope": "step"},
        {"dtype": "float16"},
        {"features": 0},
        {"cutoff_A": -1.0},
        {"layers": 1.5},
    ):
        with pytest.raises(CrmseError):
            ModelConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(CrmseError, match="unknown key"):
        from_dict(ModelConfig, {"feature": 32})


def test_make_graph_is_a_view_with_all_pairs_of_each_structure() -> None:
    pos = torch.randn(3, 4, 3, requires_grad=True)
    graph = make_graph(pos, torch.tensor([1, 6, 8, 1]))
    flat = graph[keys.POSITIONS]
    assert flat.shape == (12, 3) and flat.data_ptr() == pos.data_ptr()
    assert graph[keys.N_STRUCTURES] == 3 and graph[DENSE_N_ATOMS] == 4
    assert graph[keys.SPECIES].tolist() == [1, 6, 8, 1] * 3
    assert graph[keys.BATCH].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    receiver, sender = graph[keys.EDGE_INDEX]
    assert receiver.numel() == 3 * 4 * 3
    assert torch.all(receiver != sender)
    assert torch.equal(graph[keys.BATCH][receiver], graph[keys.BATCH][sender])
    pairs = {(int(i), int(j)) for i, j in zip(receiver, sender, strict=True)}
    assert len(pairs) == 36  # every ordered pair once
    # Templates are cached: the hot path builds no index tensors.
    again = make_graph(pos.detach(), torch.tensor([1, 6, 8, 1]))
    assert again[keys.EDGE_INDEX] is graph[keys.EDGE_INDEX]


def test_make_graph_rejects_bad_shapes() -> None:
    with pytest.raises(CrmseError):
        make_graph(torch.zeros(4, 3), torch.tensor([1, 1, 1, 1]))
    with pytest.raises(CrmseError):
        make_graph(torch.zeros(2, 4, 3), torch.tensor([1, 1, 1]))


def test_collate_offsets_and_agreement_with_make_graph() -> None:
    pot = potential("painn")
    pos, species, _, _ = ethanol(3)
    water = torch.tensor([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]], dtype=torch.float64)
    graph = collate([(pos[0], species), (water, torch.tensor([8, 1, 1])), (pos[1], species)])
    assert graph[keys.BATCH].tolist() == [0] * 9 + [1] * 3 + [2] * 9
    assert graph[keys.EDGE_INDEX].shape == (2, 72 + 6 + 72)
    energy = pot(graph)
    dense = pot(make_graph(pos[:2], species))
    torch.testing.assert_close(energy[[0, 2]], dense, rtol=0, atol=1e-8)
    single_water = pot(collate([(water, torch.tensor([8, 1, 1]))]))
    torch.testing.assert_close(energy[1:2], single_water, rtol=0, atol=1e-8)


def test_sparse_layout_drops_pairs_beyond_cutoff_exactly() -> None:
    pot = potential("painn")
    pos, species, _, _ = ethanol(1)
    far = torch.cat([pos[0], pos[0] + 7.0])  # two molecules, some pairs beyond 5 Å
    both = torch.cat([species, species])
    e_sparse = pot(collate([(far, both)]))
    e_dense = pot(make_graph(far.unsqueeze(0), both))
    torch.testing.assert_close(e_sparse, e_dense, rtol=0, atol=1e-8)


def test_fit_shift_scale_single_molecule_and_mixture() -> None:
    pot = build_potential(ModelConfig(dtype="float64"), [1, 6, 8])
    _, species, energies, forces = ethanol(8)
    shift, scale = pot.fit_shift_scale(species.numpy(), energies, forces)
    # One molecule: the composition matrix has rank 1; the shift sums to the mean energy.
    assert float(pot.shift[torch.tensor([1, 1, 2, 0, 0, 0, 0, 0, 0])].sum()) == pytest.approx(
        energies.mean(), rel=1e-12
    )
    assert scale == pytest.approx(float(np.sqrt(np.mean(forces**2))), rel=1e-12)
    assert float(pot.scale) == pytest.approx(scale)
    assert shift == pytest.approx(pot.shift.tolist())
    # A mixture with full-rank composition recovers exact per-element energies.
    per_element = {1: -300.0, 6: -23000.0, 8: -47000.0}
    frames = [[6, 6, 8, 1, 1, 1, 1, 1, 1], [8, 1, 1], [6, 1, 1, 1, 1], [6, 8, 1, 1]]
    e = [sum(per_element[z] for z in f) for f in frames]
    shift, scale = pot.fit_shift_scale(frames, e)
    assert shift == pytest.approx([-300.0, -23000.0, -47000.0], rel=1e-9)
    assert scale == 1.0  # no forces and zero residual: the fallback
    with pytest.raises(CrmseError, match=r"\[7\]"):
        pot.fit_shift_scale([[7, 1, 1, 1]], [0.0])


def test_species_outside_the_model_are_rejected() -> None:
    pot = potential("schnet")
    with pytest.raises(CrmseError, match=r"\[7\] unknown"):
        pot(make_graph(torch.zeros(1, 2, 3, dtype=torch.float64), torch.tensor([7, 1])))
    with pytest.raises(CrmseError):
        build_potential(ModelConfig(), [0, 1])
    with pytest.raises(CrmseError):
        build_potential(ModelConfig(), [119])
    heavy = build_potential(ModelConfig(), [1, 92, 118])  # any Z in 1..118 can be embedded
    assert heavy.species == [1, 92, 118]


def test_energy_and_forces_detaches_and_leaves_input_alone() -> None:
    pot = potential("painn")
    pos, species, _, _ = ethanol(4)
    energy, forces = energy_and_forces(pot, pos, species)
    assert energy.shape == (4,) and forces.shape == (4, 9, 3)
    assert not energy.requires_grad and not forces.requires_grad and not pos.requires_grad
    e_fn, f_fn = force_field(pot, species)(pos)
    assert torch.equal(e_fn, energy) and torch.equal(f_fn, forces)


def test_chunked_evaluation_equals_one_batch() -> None:
    pot = potential("painn")
    pos, species, _, _ = ethanol(7)
    e1, f1 = energy_and_forces(pot, pos, species, max_pairs=None)
    e2, f2 = energy_and_forces(pot, pos, species, max_pairs=2 * 81)  # chunks of 2 replicas
    torch.testing.assert_close(e2, e1, rtol=0, atol=1e-9)
    torch.testing.assert_close(f2, f1, rtol=0, atol=1e-10)


@pytest.mark.parametrize("max_pairs", [None, 3 * 81])
def test_create_graph_gives_weight_gradients_of_a_force_loss(max_pairs: int | None) -> None:
    pot = potential("painn")
    pos, species, energies, forces = ethanol(5)
    e, f = energy_and_forces(pot, pos, species, create_graph=True, max_pairs=max_pairs)
    assert e.requires_grad and f.requires_grad
    loss = ((f - torch.tensor(forces)) ** 2).mean() + ((e - torch.tensor(energies)) ** 2).mean()
    loss.backward()
    grads = [p.grad for p in pot.parameters()]
    assert all(g is not None for g in grads)
    assert pot.network.filter.weight.grad is not None and pot.network.filter.weight.grad.abs().max() > 0


def test_forces_from_energy_matches_energy_and_forces() -> None:
    pot = potential("schnet")
    pos, species, _, _ = ethanol(2)
    x = pos.clone().requires_grad_(True)
    f = forces_from_energy(pot(make_graph(x, species)), x, create_graph=False)
    torch.testing.assert_close(f, energy_and_forces(pot, pos, species)[1], rtol=0, atol=1e-12)


def test_laplacian_equals_finite_difference_trace() -> None:
    pot = potential("painn")
    pos, species, _, _ = ethanol(2)
    lap = laplacian(pot, pos, species)
    h = 1e-5
    steps = torch.eye(27, dtype=torch.float64).reshape(27, 9, 3) * h
    for b in range(2):
        plus = energy_and_forces(pot, pos[b] + steps, species)[1].reshape(27, 27)
        minus = energy_and_forces(pot, pos[b] - steps, species)[1].reshape(27, 27)
        fd = -(torch.diagonal(plus) - torch.diagonal(minus)).sum() / (2 * h)
        assert float(lap[b]) == pytest.approx(float(fd), rel=1e-6)
    assert torch.all(lap != 0)


def test_checkpoint_payload(tmp_path: Path) -> None:
    pot = potential("schnet", dtype="float32")
    path = tmp_path / "sub" / "model.pt"
    rng = torch.get_rng_state()
    digest = save_checkpoint(path, pot, extra={"epoch": 7, "rng": rng})
    assert digest == sha256_file(path)
    raw = torch.load(path, weights_only=True)  # plain types and tensors only
    assert raw["format_version"] == 2 and raw["package_version"] == __version__
    assert "module" not in raw  # only wrapped modules carry their construction
    assert raw["units"] == {"energy": "kcal/mol", "length": "A"}
    assert raw["species"] == [1, 6, 8] and raw["config"]["architecture"] == "schnet"
    assert raw["scale"] == pytest.approx(float(pot.scale))
    loaded, payload = load_checkpoint(path, dtype="float64")
    assert loaded.dtype == torch.float64 and loaded.config == dataclasses.replace(pot.config, dtype="float64")
    assert payload["extra"]["epoch"] == 7 and torch.equal(payload["extra"]["rng"], rng)
    assert torch.equal(torch.get_rng_state(), rng)  # loading did not advance the global RNG
    assert not loaded.training
    raw["format_version"] = 1  # files of the previous format still load
    torch.save(raw, path)
    assert torch.equal(load_checkpoint(path)[0].scale, pot.scale)


def test_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    pot = potential("painn", dtype="float32")
    path = tmp_path / "model.pt"
    save_checkpoint(path, pot)
    raw = torch.load(path, weights_only=True)
    raw["format_version"] = 99
    torch.save(raw, path)
    with pytest.raises(CrmseError, match="newer") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_tune_allocator_is_harmless() -> None:
    assert tune_allocator() in (True, False)
    pot = potential("painn")
    pos, species, _, _ = ethanol(1)
    assert torch.isfinite(energy_and_forces(pot, pos, species)[0]).all()


def test_dtype_mismatch_is_one_clear_error() -> None:
    pot = potential("painn", dtype="float32")
    pos, species, _, _ = ethanol(1)
    with pytest.raises(CrmseError, match="float64 but the potential is torch.float32"):
        energy_and_forces(pot, pos, species)


def test_templates_first_built_in_inference_mode_still_train() -> None:
    pot = potential("painn")
    pos, species, _, _ = ethanol(5)
    graph_module._template.cache_clear()
    graph_module._cached_keep_mask.cache_clear()
    with torch.inference_mode():
        e_inf = pot(make_graph(pos, species))
    e, f = energy_and_forces(pot, pos, species, create_graph=True)
    f.pow(2).sum().backward()
    torch.testing.assert_close(e.detach(), e_inf, rtol=0, atol=1e-9)


def test_energies_closure_matches_energy_and_forces() -> None:
    pot = potential("painn")
    pos, species, _, _ = ethanol(3)
    energy_fn = functools.partial(pot.energies, species=species)
    torch.testing.assert_close(
        energy_fn(pos).detach(), energy_and_forces(pot, pos, species)[0], rtol=0, atol=0
    )


def test_enveloped_basis_is_the_reference_composition() -> None:
    """PaiNN's folded basis [rbf f_c, f_c] equals the reference cat([rbf, 1]) * f_c."""
    from crmse_cli.model.radial import RadialBasis

    radial = RadialBasis(20, 5.0).double()
    vectors = torch.randn(4, 7, 7, 3, dtype=torch.float64) * 3.0
    keep = (torch.rand(7, 7, 1) > 0.2).double()
    unit, rbf, fc = radial(vectors, keep)
    unit2, basis = radial.enveloped(vectors, keep)
    torch.testing.assert_close(unit2, unit, rtol=0, atol=0)
    torch.testing.assert_close(
        basis, torch.cat([rbf, torch.ones_like(fc)], dim=-1) * fc, rtol=1e-14, atol=1e-15
    )
