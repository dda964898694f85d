"""Extended-XYZ import through ASE: bring your own frames of one molecule.

Each frame needs its total energy (``energy=`` on the comment line, or another single ``*energy*``
key) and per-atom forces (a ``forces`` column). Positions are read in Å; energies and forces are
converted from the file's unit to crmse's kcal/mol and kcal/mol/Å with :mod:`crmse_cli.units`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from crmse_cli.data.dataset import Dataset
from crmse_cli.errors import CrmseError, DataError, NotFoundError
from crmse_cli.units import ENERGY_UNITS, XYZ_ENERGY_UNITS
from crmse_cli.validate import check_option

log = logging.getLogger(__name__)

DEFAULT_TEST_FRACTION = 0.2
"""Share of frames held out as split 01's test part when only a split seed is given."""


def _energy_forces(
    atoms: Any, i: int, path: Path, energy_key: str | None = None, forces_key: str | None = None
) -> tuple[float, np.ndarray]:
    """Energy and forces of one frame in the file's units, from ASE's calculator or info/arrays.

    Named keys (MACE's ``REF_energy`` / ``REF_forces``, or ``energy`` / ``forces``) are looked up
    in the comment line / the per-atom columns, then among the results ASE parsed into its
    calculator; without names the calculator's results come first, else the one ``*energy*`` /
    ``*force*`` key.
    """
    results = dict(getattr(atoms.calc, "results", {}) or {})
    if energy_key is not None:
        energy = atoms.info.get(energy_key, results.get(energy_key))
    else:
        energy = results.get("energy", results.get("free_energy"))
    if forces_key is not None:
        forces = atoms.arrays.get(forces_key, results.get(forces_key))
    else:
        forces = results.get("forces")
    if energy is None and energy_key is None:
        keys = [k for k in atoms.info if "energy" in k.lower()]
        if len(keys) == 1:
            energy = atoms.info[keys[0]]
    if forces is None and forces_key is None:
        keys = [k for k in atoms.arrays if "force" in k.lower()]
        if len(keys) == 1:
            forces = atoms.arrays[keys[0]]
    if energy is None or forces is None:
        if energy is None:
            what = f"energy key {energy_key!r}" if energy_key else "energy"
        else:
            what = f"forces column {forces_key!r}" if forces_key else "forces"
        raise DataError(
            f"{path}: frame {i} has no {what}; write energy=... in each comment line and a "
            "forces:R:3 column (extended XYZ), or name the keys (--energy-key, --forces-key)"
        )
    try:
        value = float(np.asarray(energy).reshape(-1)[0])
    except (TypeError, ValueError, IndexError) as exc:
        raise DataError(f"{path}: frame {i} has energy {energy!r}, not a number; fix its energy=") from exc
    try:
        return value, np.asarray(forces, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: frame {i} has forces that are not numbers; fix its forces column") from exc


def _check_supported(atoms: Any, i: int, path: Path, first: Any) -> None:
    """Refuse what crmse cannot model: a periodic cell, or frames of another molecule than frame 0.

    crmse's potentials and samplers treat a frame as an isolated molecule (no cell, no periodic
    images), and a dataset as one molecule (same atoms in the same order in every frame).
    """
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any():
        axes = "".join(a for a, p in zip("xyz", pbc, strict=True) if p)
        raise DataError(
            f"{path}: frame {i} is periodic (pbc true along {axes}, cell {_cell_text(atoms)}); periodic "
            'cells are not supported, crmse models isolated molecules: write the frames with pbc="F F F"'
        )
    if not np.array_equal(atoms.numbers, first.numbers):
        this, that = atoms.get_chemical_formula(), first.get_chemical_formula()
        what = f"{this}, frame 0 is {that}" if this != that else f"{this} in another atom order than frame 0"
        raise DataError(
            f"{path}: frame {i} is {what}; files mixing compositions (or atom orders) are not "
            "supported, a dataset holds one molecule: split the file by molecule"
        )


def _cell_text(atoms: Any) -> str:
    """The cell's lengths in Å, e.g. ``12 x 12 x 12 Å``."""
    lengths = np.asarray(atoms.cell.lengths(), dtype=np.float64)
    return " x ".join(f"{v:.4g}" for v in lengths) + " Å"


def random_split(n_frames: int, test_fraction: float, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """One split ``"01"``: a seeded random ``test_fraction`` of rows is the test part, the rest train."""
    check_option("--split-seed", seed)
    if not 0.0 < test_fraction < 1.0:
        raise CrmseError(f"--test-fraction must lie strictly between 0 and 1, got {test_fraction}")
    n_test = int(round(test_fraction * n_frames))
    if n_test < 1 or n_test >= n_frames:
        raise CrmseError(
            f"--test-fraction {test_fraction} leaves no training or no test frame of {n_frames}; "
            "pick a fraction that keeps both"
        )
    order = np.random.default_rng(seed).permutation(n_frames)
    return {"01": {"train": np.sort(order[n_test:]), "test": np.sort(order[:n_test])}}


def read_xyz(
    path: Path,
    *,
    name: str,
    energy_unit: str,
    test_fraction: float | None = None,
    split_seed: int | None = None,
    energy_key: str | None = None,
    forces_key: str | None = None,
) -> Dataset:
    """All frames of an extended-XYZ file as a :class:`Dataset` in kcal/mol and kcal/mol/Å.

    Args:
        path: the extended-XYZ file (one molecule, same atoms in the same order in every frame,
            not periodic: a frame with ``pbc`` true on any axis is refused).
        name: dataset name.
        energy_unit: the file's energy unit, ``"eV"`` or ``"kcal/mol"`` (forces per Å).
        test_fraction: with ``split_seed``: share of frames in split 01's test part. When both
            are None the dataset has no splits.
        split_seed: seed of the random split (default 0 when only ``test_fraction`` is given).
        energy_key: the comment-line key of the total energy (e.g. MACE's ``REF_energy``); None:
            ASE's ``energy`` or the one key containing "energy".
        forces_key: the per-atom column of the forces (e.g. ``REF_forces``); None: ASE's
            ``forces`` or the one column containing "force".
    """
    from ase.io import read

    if energy_unit not in XYZ_ENERGY_UNITS:
        raise CrmseError(f"--energy-unit must be one of {', '.join(XYZ_ENERGY_UNITS)}, got {energy_unit!r}")
    if not path.is_file():
        raise NotFoundError(f"cannot read {path}: no such file; pass the path of an extended-XYZ file")
    try:
        frames = read(str(path), index=":", format="extxyz")
    except Exception as exc:  # noqa: BLE001 - ASE's parser raises many types on bad input
        raise DataError(f"{path} is not a readable extended-XYZ file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(frames, list) or not frames:
        raise DataError(f"{path} holds no frames; pass a non-empty extended-XYZ file")
    species = np.asarray(frames[0].numbers, dtype=np.int64)
    factor = ENERGY_UNITS[energy_unit]  # file unit -> kcal/mol
    positions, energies, forces = [], [], []
    for i, atoms in enumerate(frames):
        _check_supported(atoms, i, path, frames[0])
        energy, frame_forces = _energy_forces(atoms, i, path, energy_key, forces_key)
        if frame_forces.shape != (len(species), 3):
            raise DataError(
                f"{path}: frame {i} forces have shape {frame_forces.shape}, expected ({len(species)}, 3)"
            )
        positions.append(np.asarray(atoms.positions, dtype=np.float64))
        energies.append(energy * factor)
        forces.append(frame_forces * factor)
    splits: dict[str, dict[str, np.ndarray]] = {}
    if test_fraction is not None or split_seed is not None:
        splits = random_split(
            len(frames),
            DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction,
            0 if split_seed is None else split_seed,
        )
    log.info("read %d frames of %d atoms from %s (%s)", len(frames), len(species), path, energy_unit)
    return Dataset(
        name=name,
        species=species,
        positions=np.stack(positions),
        energies=np.asarray(energies),
        forces=np.stack(forces),
        frame_ids=np.arange(len(frames), dtype=np.int64),
        splits=splits,
        meta={
            "source_file": str(path.resolve()),
            "energy_unit_in_file": energy_unit,
            "kcal_per_mol_per_file_unit": factor,
            "frame_ids": "frame index in the xyz file",
            "split_seed": split_seed,
            "test_fraction": test_fraction,
            "energy_key": energy_key,
            "forces_key": forces_key,
        },
    )
