"""The energy + force MSE loss of pretraining, shared by CRMSE post-training.

    L_MSE = w_E * mean_b (U(x_b) - E_b)^2 + w_F * mean_{b,i,a} (F_bia - F^DFT_bia)^2

in rMD17's units: energies in kcal/mol, forces in kcal/mol/Å, so ``w_E`` is in (kcal/mol)^-2 and
``w_F`` in (kcal/mol/Å)^-2 and the loss is dimensionless (METHOD.md, "Pretraining").

Default weights: w_E = 0.05, w_F = 1. Forces carry 3N numbers per frame against one energy, and
fitting them fits the energy surface's shape; a small energy weight then only pins the offset. A
5-minute single-core PaiNN training on ethanol with these weights reached a test energy MAE of
0.16 kcal/mol and a force MAE of 0.72 kcal/mol/Å (``crmse_cli.model.config``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from crmse_cli.errors import CrmseError
from crmse_cli.model.forces import energy_and_forces, forces_from_energy
from crmse_cli.model.potential import Potential
from crmse_cli.train.loss_weights import DEFAULT_ENERGY_WEIGHT as DEFAULT_ENERGY_WEIGHT  # re-exported
from crmse_cli.train.loss_weights import DEFAULT_FORCE_WEIGHT as DEFAULT_FORCE_WEIGHT
from crmse_cli.train.loss_weights import LossWeights as LossWeights
from crmse_cli.units import ENERGY_UNIT, FORCE_UNIT, MEV_PER_KCAL_PER_MOL

EnergyFn = Callable[[Tensor], Tensor]
"""positions (B, N, 3) Å -> energies (B,) kcal/mol, differentiable in parameters and positions."""


@dataclass(frozen=True)
class LossParts:
    """What one evaluation of L_MSE measured.

    Attributes:
        energy: (B,) predicted energies, kcal/mol, still attached to the graph (the contrastive
            term reuses them for its data mean).
        forces: (B, N, 3) predicted forces, kcal/mol/Å, attached to the graph.
        mse_energy: mean squared energy error, (kcal/mol)^2, detached 0-d tensor.
        mse_forces: mean squared force-component error, (kcal/mol/Å)^2, detached 0-d tensor.
        energy_abs_error: (B,) |U - E|, kcal/mol, detached.
        force_abs_error: (B,) mean over atoms and components of |F - F_ref|, kcal/mol/Å, detached.
    """

    energy: Tensor
    forces: Tensor
    mse_energy: Tensor
    mse_forces: Tensor
    energy_abs_error: Tensor
    force_abs_error: Tensor


def mse_loss(
    pred_energy: Tensor,
    pred_forces: Tensor,
    energies: Tensor,
    forces: Tensor,
    weights: LossWeights = LossWeights(),
) -> tuple[Tensor, LossParts]:
    """L_MSE of given predictions.

    The energy difference is taken in float64 even for a float32 model: total energies are
    ~1e5 kcal/mol, where float32 rounds labels to ~0.008 kcal/mol.

    Args:
        pred_energy: (B,) kcal/mol.
        pred_forces: (B, N, 3) kcal/mol/Å.
        energies: (B,) reference energies, kcal/mol.
        forces: (B, N, 3) reference forces, kcal/mol/Å.
        weights: w_E and w_F.

    Returns:
        (the 0-d loss in the predictions' dtype, its parts).
    """
    e_err = pred_energy.double() - energies.to(device=pred_energy.device, dtype=torch.float64)
    f_err = pred_forces - forces.to(device=pred_forces.device, dtype=pred_forces.dtype)
    mse_e = e_err.pow(2).mean()
    mse_f = f_err.pow(2).mean()
    loss = (weights.energy * mse_e).to(pred_forces.dtype) + weights.forces * mse_f
    parts = LossParts(
        energy=pred_energy,
        forces=pred_forces,
        mse_energy=mse_e.detach(),
        mse_forces=mse_f.detach(),
        energy_abs_error=e_err.detach().abs(),
        force_abs_error=f_err.detach().abs().flatten(1).mean(1),
    )
    return loss, parts


def energy_force_loss(
    potential: Potential | EnergyFn,
    positions: Tensor,
    species: Tensor | None,
    energies: Tensor,
    forces: Tensor,
    weights: LossWeights = LossWeights(),
) -> tuple[Tensor, LossParts]:
    """L_MSE of a potential on a batch of frames of one molecule, differentiable in the weights.

    Forces come from ``crmse_cli.model.forces`` with ``create_graph=True``, so the force term
    back-propagates to the parameters.

    Args:
        potential: a :class:`Potential`, or an ``energy_fn(positions (B,N,3)) -> (B,)`` closure
            (the contrastive trainer's form; ``species`` is then ignored).
        positions: (B, N, 3) Å in the potential's dtype.
        species: (N,) atomic numbers (needed for a :class:`Potential`).
        energies: (B,) reference energies, kcal/mol.
        forces: (B, N, 3) reference forces, kcal/mol/Å.
        weights: w_E and w_F.

    Returns:
        (0-d loss, :class:`LossParts`).
    """
    if isinstance(potential, Potential):
        if species is None:
            raise CrmseError("energy_force_loss: species are required with a Potential")
        pred_e, pred_f = energy_and_forces(potential, positions, species, create_graph=True)
    else:
        pos = positions.detach().requires_grad_(True)
        pred_e = potential(pos)
        pred_f = forces_from_energy(pred_e, pos, create_graph=True)
    return mse_loss(pred_e, pred_f, energies, forces, weights)


@dataclass(frozen=True)
class ErrorMetrics:
    """Errors of a potential over a whole frame set (not averaged per batch).

    Attributes:
        loss: L_MSE over all frames with the given weights (dimensionless).
        energy_mae: mean |U - E|, kcal/mol.
        energy_rmse: sqrt(mean (U - E)^2), kcal/mol.
        force_mae: mean over frames, atoms and components of |F - F_ref|, kcal/mol/Å.
        force_rmse: root mean square of the same, kcal/mol/Å.
        n_frames: number of frames evaluated.
    """

    loss: float
    energy_mae: float
    energy_rmse: float
    force_mae: float
    force_rmse: float
    n_frames: int


def evaluate_errors(
    potential: Potential,
    positions: Tensor,
    species: Tensor,
    energies: Tensor,
    forces: Tensor,
    weights: LossWeights = LossWeights(),
    *,
    batch_size: int = 256,
) -> ErrorMetrics:
    """Energy and force errors of ``potential`` on frames of one molecule (no weight gradients).

    Args:
        potential: the model (its mode is left as it was).
        positions: (F, N, 3) Å in the potential's dtype.
        species: (N,) atomic numbers.
        energies: (F,) reference energies, kcal/mol.
        forces: (F, N, 3) reference forces, kcal/mol/Å.
        weights: w_E and w_F of the reported loss.
        batch_size: frames per evaluation.
    """
    n = int(positions.shape[0])
    if n == 0:
        raise CrmseError("evaluate_errors: no frames to evaluate")
    sums = torch.zeros(4, dtype=torch.float64)  # sum |dE|, sum dE^2, sum |dF|, sum dF^2
    n_components = 0
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        e, f = energy_and_forces(potential, positions[start:stop], species, create_graph=False)
        de = e.double() - energies[start:stop].to(device=e.device, dtype=torch.float64)
        df = (f - forces[start:stop].to(device=f.device, dtype=f.dtype)).double()
        batch_sums = torch.stack([de.abs().sum(), de.pow(2).sum(), df.abs().sum(), df.pow(2).sum()])
        sums += batch_sums.cpu()
        n_components += df.numel()
    e_mae, e_mse = float(sums[0]) / n, float(sums[1]) / n
    f_mae, f_mse = float(sums[2]) / n_components, float(sums[3]) / n_components
    return ErrorMetrics(
        loss=weights.energy * e_mse + weights.forces * f_mse,
        energy_mae=e_mae,
        energy_rmse=e_mse**0.5,
        force_mae=f_mae,
        force_rmse=f_mse**0.5,
        n_frames=n,
    )


def error_metrics(errors: ErrorMetrics, prefix: str = "test") -> dict[str, tuple[float, str]]:
    """Named metrics of ``errors``: ``{prefix}_energy_mae`` etc. in kcal/mol(/Å) and ``_meV`` twins.

    Returns:
        name -> (value, unit string), units as the registry records them.
    """
    out: dict[str, tuple[float, str]] = {}
    for quantity, unit in (("energy", ENERGY_UNIT), ("force", FORCE_UNIT)):
        for stat in ("mae", "rmse"):
            value = float(getattr(errors, f"{quantity}_{stat}"))
            out[f"{prefix}_{quantity}_{stat}"] = (value, unit)
            mev_unit = "meV" if quantity == "energy" else "meV/A"
            out[f"{prefix}_{quantity}_{stat}_meV"] = (value * MEV_PER_KCAL_PER_MOL, mev_unit)
    return out
