"""rMD17 -> crmse dataset: read the official archive (streamed), a bare npz, or the andersx split files.

Official layout (``rmd17.tar.bz2``)::

    rmd17/npz_data/rmd17_<molecule>.npz    keys nuclear_charges, coords, energies, forces,
                                           old_indices, old_energies, old_forces
    rmd17/splits/index_{train,test}_0{1..5}.csv   row indices into every molecule's npz

Only the requested molecule's npz and the split files are read, streaming through the tar
(nothing else is unpacked to disk). Units are rMD17's own (Å, kcal/mol), which are crmse's.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from crmse_cli.data.dataset import Dataset
from crmse_cli.data.sources import MOLECULES, N_SPLITS
from crmse_cli.errors import CrmseError, DataError

REQUIRED_KEYS = ("nuclear_charges", "coords", "energies", "forces")


def check_molecule(molecule: str) -> str:
    if molecule not in MOLECULES:
        raise CrmseError(f"unknown rMD17 molecule {molecule!r}; choose one of: {', '.join(MOLECULES)}")
    return molecule


def _npz_arrays(blob: bytes | Path, where: str) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(blob) if isinstance(blob, bytes) else blob, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{where} is not a readable npz file ({exc})") from exc
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise DataError(f"{where} lacks the rMD17 keys {', '.join(missing)} (needs {', '.join(REQUIRED_KEYS)})")
    return arrays


def _csv_indices(blob: bytes, where: str) -> np.ndarray:
    try:
        values = np.loadtxt(io.StringIO(blob.decode()), dtype=np.int64, ndmin=1)
    except ValueError as exc:
        raise DataError(f"{where} is not a list of row indices ({exc})") from exc
    return values.reshape(-1)


def read_archive(path: Path, molecule: str) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """The molecule's npz arrays and the split indices, streamed out of an official-layout tar."""
    want_npz = f"npz_data/rmd17_{molecule}.npz"
    arrays: dict[str, np.ndarray] | None = None
    splits: dict[str, dict[str, np.ndarray]] = {}
    n_split_files = 2 * N_SPLITS
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = member.name
                is_npz = name.endswith(want_npz)
                is_split = "/splits/index_" in f"/{name}" and name.endswith(".csv")
                if not (is_npz or is_split):
                    continue
                fh = tar.extractfile(member)
                blob = fh.read() if fh is not None else b""
                if is_npz:
                    arrays = _npz_arrays(blob, f"{path.name}:{name}")
                else:
                    stem = Path(name).stem  # index_train_01
                    _, part, key = stem.split("_", 2)
                    splits.setdefault(key.zfill(2), {})[part] = _csv_indices(blob, f"{path.name}:{name}")
                if arrays is not None and sum(len(v) for v in splits.values()) == n_split_files:
                    break
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{path} is not a readable rMD17 archive ({exc}); download it again") from exc
    if arrays is None:
        raise DataError(f"{path} holds no rmd17/{want_npz}; is it the rMD17 archive?")
    return arrays, splits


def to_dataset(molecule: str, arrays: dict[str, np.ndarray], splits: dict[str, dict[str, np.ndarray]],
               meta: dict[str, Any]) -> Dataset:
    """A crmse Dataset (validated: shapes, finite values, split ranges)."""
    n = len(arrays["energies"])
    frame_ids = arrays.get("old_indices", np.arange(n))
    complete = {k: v for k, v in splits.items() if "train" in v and "test" in v}
    return Dataset(
        name=molecule,
        species=np.asarray(arrays["nuclear_charges"], dtype=np.int64).reshape(-1),
        positions=np.asarray(arrays["coords"], dtype=np.float64),
        energies=np.asarray(arrays["energies"], dtype=np.float64).reshape(-1),
        forces=np.asarray(arrays["forces"], dtype=np.float64),
        frame_ids=np.asarray(frame_ids, dtype=np.int64).reshape(-1),
        splits={k: {p: np.asarray(i, dtype=np.int64) for p, i in v.items()} for k, v in sorted(complete.items())},
        meta={**meta, "has_old_labels": "old_energies" in arrays, "frame_ids": "MD17 trajectory index (old_indices)"},
    )


def read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """A bare molecule npz; split files are used if they sit in ``../splits`` (the archive's layout)."""
    arrays = _npz_arrays(path, str(path))
    splits: dict[str, dict[str, np.ndarray]] = {}
    split_dir = path.parent.parent / "splits"
    for k in range(1, N_SPLITS + 1):
        parts = {p: split_dir / f"index_{p}_{k:02d}.csv" for p in ("train", "test")}
        if all(f.is_file() for f in parts.values()):
            splits[f"{k:02d}"] = {p: _csv_indices(f.read_bytes(), str(f)) for p, f in parts.items()}
    return arrays, splits


def merge_split_files(files: dict[tuple[str, str], Path]) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """andersx split files {(part, "01"): path} -> one frame set (deduplicated by old_indices) + splits."""
    loaded = {key: _npz_arrays(path, str(path)) for key, path in sorted(files.items())}
    row_of: dict[int, int] = {}
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in ("coords", "energies", "forces", "old_indices")}
    splits: dict[str, dict[str, np.ndarray]] = {}
    species = None
    for (part, key), arr in loaded.items():
        if "old_indices" not in arr:
            raise DataError(f"{files[(part, key)]} lacks old_indices; it is not an andersx rMD17 split file")
        species = arr["nuclear_charges"] if species is None else species
        rows = []
        for j, old in enumerate(np.asarray(arr["old_indices"]).astype(np.int64)):
            if int(old) not in row_of:
                row_of[int(old)] = len(row_of)
                for k in chunks:
                    chunks[k].append(np.asarray(arr[k][j]))
            rows.append(row_of[int(old)])
        splits.setdefault(key, {})[part] = np.asarray(rows, dtype=np.int64)
    assert species is not None
    arrays = {k: np.stack(v) for k, v in chunks.items()}
    arrays["nuclear_charges"] = species
    return arrays, splits
