"""The energy + force MSE loss: known values, gradients, and agreement with the CRMSE trainer."""

from __future__ import annotations

import math

import pytest
import torch

from crmse_cli.errors import CrmseError
from crmse_cli.model import ModelConfig, build_potential, energy_and_forces
from crmse_cli.train.losses import (
    DEFAULT_ENERGY_WEIGHT,
    DEFAULT_FORCE_WEIGHT,
    LossWeights,
    energy_force_loss,
    error_metrics,
    evaluate_errors,
    mse_loss,
)
from crmse_cli.units import MEV_PER_KCAL_PER_MOL


def harmonic(k: torch.Tensor):  # U = k/2 sum x^2 (kcal/mol), F = -k x
    return lambda pos: 0.5 * k * pos.pow(2).sum(dim=(1, 2))


def test_defaults_are_documented_values() -> None:
    assert (LossWeights().energy, LossWeights().forces) == (DEFAULT_ENERGY_WEIGHT, DEFAULT_FORCE_WEIGHT)
    assert (DEFAULT_ENERGY_WEIGHT, DEFAULT_FORCE_WEIGHT) == (0.05, 1.0)


def test_mse_loss_known_value() -> None:
    pred_e = torch.tensor([1.0, 3.0], dtype=torch.float64)
    ref_e = torch.tensor([0.0, 0.0], dtype=torch.float64)  # errors 1, 3: MSE 5, MAE 2
    pred_f = torch.zeros(2, 1, 3, dtype=torch.float64)
    ref_f = torch.full((2, 1, 3), 2.0, dtype=torch.float64)  # every component off by 2: MSE 4
    loss, parts = mse_loss(pred_e, pred_f, ref_e, ref_f, LossWeights(energy=0.5, forces=2.0))
    assert float(loss.detach()) == pytest.approx(0.5 * 5.0 + 2.0 * 4.0)
    assert float(parts.mse_energy) == pytest.approx(5.0)
    assert float(parts.mse_forces) == pytest.approx(4.0)
    assert parts.energy_abs_error.tolist() == pytest.approx([1.0, 3.0])
    assert parts.force_abs_error.tolist() == pytest.approx([2.0, 2.0])


def test_energy_difference_keeps_float64_precision() -> None:
    # A float32 prediction of -97000.0 against a label 0.004 above it: float32 would round the
    # label onto the prediction (spacing 0.0078) and report zero error.
    pred = torch.tensor([-97000.0], dtype=torch.float32)
    ref = torch.tensor([-97000.0 + 0.004], dtype=torch.float64)
    _, parts = mse_loss(pred, torch.zeros(1, 1, 3), ref, torch.zeros(1, 1, 3))
    assert float(parts.energy_abs_error[0]) == pytest.approx(0.004, rel=1e-6)


def test_energy_force_loss_of_closure_and_its_gradient() -> None:
    k = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    pos = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]], dtype=torch.float64)  # sum x^2 = 3
    e_ref = torch.zeros(1, dtype=torch.float64)
    f_ref = torch.zeros(1, 2, 3, dtype=torch.float64)
    w = LossWeights(energy=1.0, forces=1.0)
    loss, parts = energy_force_loss(harmonic(k), pos, None, e_ref, f_ref, w)
    # U = k/2 * 3 = 3; F = -k x: squares sum 4 * 3 = 12 over 6 components -> 2.
    assert float(loss.detach()) == pytest.approx(9.0 + 2.0)
    assert torch.allclose(parts.forces.detach(), -2.0 * pos)
    loss.backward()
    # d/dk [ (1.5 k)^2 + k^2 * 3 / 6 ] = 4.5 k + k = 11 at k = 2: the force term reaches k.
    assert float(k.grad) == pytest.approx(11.0)


def test_loss_of_a_potential_matches_manual_computation() -> None:
    torch.manual_seed(0)
    pot = build_potential(ModelConfig(features=8, layers=1, n_rbf=4, dtype="float64"), [1, 8])
    species = torch.tensor([8, 1, 1])
    pos = torch.randn(4, 3, 3, dtype=torch.float64)
    e_ref = torch.randn(4, dtype=torch.float64)
    f_ref = torch.randn(4, 3, 3, dtype=torch.float64)
    loss, _ = energy_force_loss(pot, pos, species, e_ref, f_ref)
    e, f = energy_and_forces(pot, pos, species)
    expected = 0.05 * ((e - e_ref) ** 2).mean() + ((f - f_ref) ** 2).mean()
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-10)
    loss.backward()
    grads = [p.grad for p in pot.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    with pytest.raises(CrmseError):
        energy_force_loss(pot, pos, None, e_ref, f_ref)


def test_same_loss_as_the_contrastive_trainer_formula() -> None:
    """The CRMSE trainer's L_MSE (w_E mean dE^2 + w_F mean dF^2) is this loss."""
    from crmse_cli.model.forces import forces_from_energy

    k = torch.tensor(1.3, dtype=torch.float64)
    pos = torch.randn(5, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    e_ref, f_ref = torch.randn(5, dtype=torch.float64), torch.randn(5, 2, 3, dtype=torch.float64)
    w = LossWeights(energy=0.3, forces=0.7)
    loss, _ = energy_force_loss(harmonic(k), pos, None, e_ref, f_ref, w)
    p = pos.clone().requires_grad_(True)
    e = harmonic(k)(p)
    f = forces_from_energy(e, p, create_graph=True)
    inline = 0.3 * (e - e_ref).pow(2).mean() + 0.7 * (f - f_ref).pow(2).mean()
    assert float(loss.detach()) == pytest.approx(float(inline.detach()), rel=1e-12)


def test_evaluate_errors_and_metric_names() -> None:
    torch.manual_seed(0)
    pot = build_potential(ModelConfig(features=8, layers=1, n_rbf=4, dtype="float64"), [1, 8])
    species = torch.tensor([8, 1, 1])
    pos = torch.randn(7, 3, 3, dtype=torch.float64)
    e, f = energy_and_forces(pot, pos, species)
    e_ref, f_ref = e.double() + torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 3.0]), f + 0.5
    errors = evaluate_errors(pot, pos, species, e_ref, f_ref, batch_size=3)  # uneven batches
    assert errors.n_frames == 7
    assert errors.energy_mae == pytest.approx(9.0 / 7)
    assert errors.energy_rmse == pytest.approx(math.sqrt(15.0 / 7))
    assert errors.force_mae == pytest.approx(0.5) and errors.force_rmse == pytest.approx(0.5)
    assert errors.loss == pytest.approx(0.05 * 15.0 / 7 + 0.25)
    named = error_metrics(errors, prefix="test")
    assert set(named) == {
        f"test_{q}_{s}{m}" for q in ("energy", "force") for s in ("mae", "rmse") for m in ("", "_meV")
    }
    assert named["test_force_mae"] == (pytest.approx(0.5), "kcal/mol/A")
    assert named["test_energy_mae_meV"][0] == pytest.approx(9.0 / 7 * MEV_PER_KCAL_PER_MOL)
    assert named["test_energy_mae_meV"][1] == "meV" and named["test_force_rmse_meV"][1] == "meV/A"


def test_invalid_weights_are_one_line_errors() -> None:
    with pytest.raises(CrmseError):
        LossWeights(energy=-1.0)
    with pytest.raises(CrmseError):
        LossWeights(energy=0.0, forces=0.0)
