"""Start geometries of molecules that ASE's collection lacks (``crmse fetch xtb`` without ``--start-from``).

Aspirin: the first frame of rMD17's aspirin ``train_01`` split (andersx/rmd17-npz, CC0; Christensen
& von Lilienfeld, Mach. Learn.: Sci. Technol. 1, 045018 (2020)), centred, Å, in rMD17's atom
order. A 500 K frame, not a minimum: the xTB generator's equilibration relaxes it.
"""

from __future__ import annotations

import numpy as np

ASPIRIN_SPECIES = (6, 6, 6, 6, 6, 6, 6, 8, 8, 8, 6, 6, 8, 1, 1, 1, 1, 1, 1, 1, 1)
ASPIRIN_POSITIONS_A = (
    (1.9076, -1.4411, 0.0088), (1.1110, 1.0377, -0.6350), (2.8429, -0.6915, -0.7082),
    (2.3514, 0.4742, -1.1757), (-2.9003, 2.2080, 0.4276), (0.5403, -1.0798, 0.3170),
    (0.2372, 0.2683, 0.0362), (-1.4843, -1.8754, 1.4233), (-1.7793, 1.1361, -1.4343),
    (0.1112, -3.3065, 0.5538), (-0.3964, -2.0420, 0.8910), (-1.8182, 1.3998, -0.2799),
    (-0.9254, 0.8647, 0.6288), (-0.2807, -3.9892, 1.0742), (2.2646, -2.3492, 0.4656),
    (0.8244, 2.0421, -0.8953), (3.8121, -1.1235, -0.9370), (3.0280, 1.2311, -1.6553),
    (-2.7183, 3.2176, 0.5789), (-3.8579, 2.3138, -0.1338), (-2.8699, 1.7046, 1.4491),
)  # fmt: skip

GEOMETRIES: dict[str, tuple[tuple[int, ...], tuple[tuple[float, float, float], ...]]] = {
    "aspirin": (ASPIRIN_SPECIES, ASPIRIN_POSITIONS_A),
}
"""Molecule name -> (atomic numbers (N,), positions (N, 3) Å)."""


def builtin_geometry(molecule: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(species (N,) int64, positions (N, 3) Å float64) of a built-in molecule, or None."""
    if molecule not in GEOMETRIES:
        return None
    species, positions = GEOMETRIES[molecule]
    return np.array(species, dtype=np.int64), np.array(positions, dtype=np.float64)
