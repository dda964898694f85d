"""Extended-XYZ import through ASE: bring your own frames (energy per frame, forces per atom)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crmse_cli.data.dataset import Dataset
from crmse_cli.errors import CrmseError, DataError
from crmse_cli.units import EV_PER_KCAL_PER_MOL

ENERGY_UNITS = {"eV": 1.0 / EV_PER_KCAL_PER_MOL, "kcal/mol": 1.0}
"""Factor from the file's energy unit to kcal/mol (forces: the same per Å)."""


def _energy_forces(atoms: Any, i: int, path: Path) -> tuple[float, np.ndarray]:
    calc = atoms.calc
    try:
        energy = float(calc.get_potential_energy()) if calc is not None else None
        forces = np.asarray(calc.get_forces()) if calc is not None else None
    except Exception:  # noqa: BLE001 - ASE raises several types when a property is absent
        energy, forces = None, None
    if energy is None:
        for key in ("energy", "Energy", "E", "total_energy"):
            if key in atoms.info:
                energy = float(atoms.info[key])
                break
    if forces is None:
        for key in ("forces", "force", "F"):
            if key in atoms.arrays:
                forces = np.asarray(atoms.arrays[key])
                break
    if energy is None or forces is None:
        raise DataError(f"{path}: frame {i} has no energy and forces (expected energy= in the comment line and a forces column)")
    return energy, forces


def read_xyz(path: Path, *, name: str, energy_unit: str, test_fraction: float = 0.0, split_seed: int = 0) -> Dataset:
    """All frames of an extended-XYZ file as a Dataset (kcal/mol); optional random split "01"."""
    from ase.io import read

    if energy_unit not in ENERGY_UNITS:
        raise CrmseError(f"--energy-unit must be one of {', '.join(ENERGY_UNITS)}, got {energy_unit!r}")
    if not path.is_file():
        raise CrmseError(f"cannot read {path}: no such file")
    try:
        frames = read(str(path), index=":", format="extxyz")
    except Exception as exc:  # noqa: BLE001 - ASE's parser raises many types on bad input
        raise DataError(f"{path} is not a readable extended-XYZ file ({type(exc).__name__}: {exc})") from exc
    if not frames:
        raise DataError(f"{path} holds no frames")
    species = frames[0].numbers
    factor = ENERGY_UNITS[energy_unit]
    pos, ene, frc = [], [], []
    for i, atoms in enumerate(frames):
        if not np.array_equal(atoms.numbers, species):
            raise DataError(f"{path}: frame {i} has other atoms than frame 0; one molecule per dataset")
        e, f = _energy_forces(atoms, i, path)
        pos.append(atoms.positions)
        ene.append(e * factor)
        frc.append(f * factor)
    splits = {}
    if not 0.0 <= test_fraction < 1.0:
        raise CrmseError(f"--test-fraction must lie in [0, 1), got {test_fraction}")
    if test_fraction > 0:
        order = np.random.default_rng(split_seed).permutation(len(frames))
        n_test = max(1, int(round(test_fraction * len(frames))))
        splits = {"01": {"train": np.sort(order[n_test:]), "test": np.sort(order[:n_test])}}
    return Dataset(
        name=name, species=np.asarray(species, dtype=np.int64), positions=np.asarray(pos, dtype=np.float64),
        energies=np.asarray(ene, dtype=np.float64), forces=np.asarray(frc, dtype=np.float64),
        frame_ids=np.arange(len(frames), dtype=np.int64), splits=splits,
        meta={"source_file": str(path), "energy_unit_in_file": energy_unit},
    )
