"""Shared geometry and model builders for the model and physics tests (no tests here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from crmse_cli.model import ModelConfig, Potential, build_potential

ETHANOL_NPZ = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "data"
    / "rmd17"
    / "andersx-rmd17-npz"
    / "rmd17_ethanol_train_01.npz"
).resolve()

# Hand-built ethanol (C C O H H H H H H), Å: used only when the shared rMD17 data is absent.
_ETHANOL = np.array(
    [
        [0.000, 0.000, 0.000],  # C (methyl)
        [1.515, 0.000, 0.000],  # C
        [2.000, 1.340, 0.000],  # O
        [-0.390, 1.020, 0.000],  # H
        [-0.390, -0.510, 0.885],  # H
        [-0.390, -0.510, -0.885],  # H
        [1.900, -0.510, 0.885],  # H
        [1.900, -0.510, -0.885],  # H
        [2.960, 1.330, 0.000],  # H (hydroxyl)
    ]
)
ETHANOL_SPECIES = [6, 6, 8, 1, 1, 1, 1, 1, 1]


def ethanol(n_frames: int = 4) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """(positions (F,9,3) float64 Å, species (9,), energies (F,), forces (F,9,3)) of real frames.

    Falls back to jittered copies of a hand-built geometry with made-up labels.
    """
    if ETHANOL_NPZ.exists():
        with np.load(ETHANOL_NPZ) as d:
            return (
                torch.tensor(d["coords"][:n_frames], dtype=torch.float64),
                torch.tensor(d["nuclear_charges"], dtype=torch.long),
                np.array(d["energies"][:n_frames]),
                np.array(d["forces"][:n_frames]),
            )
    rng = np.random.default_rng(0)
    pos = _ETHANOL[None] + 0.05 * rng.standard_normal((n_frames, 9, 3))
    energies = -97000.0 + rng.standard_normal(n_frames)
    forces = 20.0 * rng.standard_normal((n_frames, 9, 3))
    return torch.tensor(pos), torch.tensor(ETHANOL_SPECIES), energies, forces


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
