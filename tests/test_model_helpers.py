"""Shared geometry and model builders for the model and physics tests (no tests here)."""

from __future__ import annotations

import numpy as np
import torch
from conftest import ANDERSX, synthetic_frames

from crmse_cli.model import ModelConfig, Potential, build_potential

ETHANOL_NPZ = ANDERSX / "rmd17_ethanol_train_01.npz"

ETHANOL_SPECIES = [6, 6, 8, 1, 1, 1, 1, 1, 1]


def ethanol(n_frames: int = 4) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """(positions (F,9,3) float64 Å, species (9,), energies (F,), forces (F,9,3)) of real frames.

    Falls back to synthetic frames (conftest.synthetic_frames) without the shared data.
    """
    if ETHANOL_NPZ.exists():
        with np.load(ETHANOL_NPZ) as d:
            return (
                torch.tensor(d["coords"][:n_frames], dtype=torch.float64),
                torch.tensor(d["nuclear_charges"], dtype=torch.long),
                np.array(d["energies"][:n_frames]),
                np.array(d["forces"][:n_frames]),
            )
    d = synthetic_frames("ethanol", n_frames)
    return torch.tensor(d["coords"]), torch.tensor(ETHANOL_SPECIES), d["energies"], d["forces"]


def potential(
    architecture: str = "painn", dtype: str = "float64", seed: int = 0, **overrides: object
) -> Potential:
    """A small seeded potential for ethanol's species with shift/scale fitted to ethanol frames."""
    torch.manual_seed(seed)
    config = ModelConfig(architecture=architecture, dtype=dtype, **overrides)  # type: ignore[arg-type]
    pot = build_potential(config, [1, 6, 8])
    _, species, energies, forces = ethanol(8)
    pot.fit_shift_scale(species.numpy(), energies, forces)
    return pot


def random_rotation(seed: int) -> torch.Tensor:
    """A random proper rotation matrix (3, 3), float64."""
    gen = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
