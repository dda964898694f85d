"""The project's dataset file: one molecule, many frames, with the official splits.

Format (an uncompressed ``.npz``, version 1), internal units:

- ``species`` (N,) int64: atomic numbers, the same for every frame.
- ``positions`` (F, N, 3) float64, Å.
- ``energies`` (F,) float64, kcal/mol (total energies, as rMD17 gives them).
- ``forces`` (F, N, 3) float64, kcal/mol/Å.
- ``frame_ids`` (F,) int64: the frame's index in its source (rMD17: the row in the official npz).
- ``split_<k>_train`` / ``split_<k>_test`` int64: row indices into this file for split ``k``
  (``01``..``05`` for rMD17), as the official split files give them.
- ``split_<k>_added`` int64, optional: rows of the training part labelled later (active learning,
  ``crmse fetch active``); a pretrain always trains on them and draws its other frames from the
  rest of the training part exactly as it would without them.
- ``old_energies`` (F,) / ``old_forces`` (F, N, 3) float64, optional: the original MD17 labels of
  the same frames (PBE+vdW-TS, the surface the rMD17 frames were sampled on), in the same units
  (kcal/mol, kcal/mol/Å: checked on the official npz, whose ``old_energies`` of ethanol are
  ~-97,200 kcal/mol beside rMD17's ~-97,080). :meth:`Dataset.with_md17_labels` trains on them.
- ``meta`` 0-d unicode array holding JSON: name, source, units, format version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crmse_cli.errors import DataError
from crmse_cli.fileio import NPZ_READ_ERRORS, atomic_path

FORMAT_VERSION = 1
ADDED = "added"
"""The split part of rows added to the training part later (see the module docstring)."""
UNITS = {"length": "A", "energy": "kcal/mol", "forces": "kcal/mol/A"}


@dataclass(frozen=True, eq=False)
class Dataset:
    """Frames of one molecule with energies, forces and named splits (internal units)."""

    name: str
    species: np.ndarray  # (N,) int64
    positions: np.ndarray  # (F, N, 3) float64, Å
    energies: np.ndarray  # (F,) float64, kcal/mol
    forces: np.ndarray  # (F, N, 3) float64, kcal/mol/Å
    frame_ids: np.ndarray  # (F,) int64
    splits: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # {"01": {"train": idx}}
    meta: dict[str, Any] = field(default_factory=dict)
    old_energies: np.ndarray | None = None  # (F,) float64, kcal/mol: original MD17 labels
    old_forces: np.ndarray | None = None  # (F, N, 3) float64, kcal/mol/Å: original MD17 labels

    def __post_init__(self) -> None:
        validate_arrays(self.species, self.positions, self.energies, self.forces, self.name)
        if (self.old_energies is None) != (self.old_forces is None):
            raise DataError(f"{self.name}: old_energies and old_forces come together or not at all")
        if self.old_energies is not None and self.old_forces is not None:
            validate_arrays(
                self.species, self.positions, self.old_energies, self.old_forces, f"{self.name} (MD17 labels)"
            )
        n_frames = len(self.energies)
        for key, parts in self.splits.items():
            for part, idx in parts.items():
                if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= n_frames)):
                    raise DataError(f"{self.name}: split {key}/{part} indexes outside 0..{n_frames - 1}")
            if ADDED in parts and not np.isin(parts[ADDED], parts.get("train", [])).all():
                raise DataError(f"{self.name}: split {key}'s added rows must lie in its training part")

    @property
    def n_frames(self) -> int:
        """F, the number of frames."""
        return int(self.energies.shape[0])

    @property
    def n_atoms(self) -> int:
        """N, the number of atoms per frame."""
        return int(self.species.shape[0])

    def split(self, key: str | int) -> tuple[np.ndarray, np.ndarray]:
        """(train, test) row indices of split ``key`` (``1`` or ``"01"``)."""
        k = normalize_split(key)
        if k not in self.splits:
            have = ", ".join(sorted(self.splits)) or "none"
            raise DataError(f"dataset {self.name!r} has no split {k!r} (splits: {have})")
        parts = self.splits[k]
        return parts["train"], parts.get("test", np.zeros(0, dtype=np.int64))

    def added_rows(self, key: str | int) -> np.ndarray:
        """Rows of split ``key``'s training part added later, always trained on (empty if none)."""
        return self.splits.get(normalize_split(key), {}).get(ADDED, np.zeros(0, dtype=np.int64))

    def reference_indices(self, key: str | int) -> np.ndarray:
        """Rows in neither the training nor the test part of split ``key``: the DFT reference.

        When the split covers every frame (a training set imported from your own xyz file, e.g.
        with ``crmse mace import``), all frames are the reference: they are the only samples of
        the target distribution there are.
        """
        train, test = self.split(key)
        mask = np.ones(self.n_frames, dtype=bool)
        mask[train] = False
        mask[test] = False
        rows = np.flatnonzero(mask)
        return rows if len(rows) else np.arange(self.n_frames)

    @property
    def has_md17_labels(self) -> bool:
        """The file holds the original MD17 labels of its frames (``old_energies``, ``old_forces``)."""
        return self.old_energies is not None

    def with_md17_labels(self) -> Dataset:
        """The same frames and splits labelled with the original MD17 energies and forces.

        Named ``<name>-md17``; its meta records ``labels: md17`` and the dataset it came from.

        Raises:
            DataError: the dataset holds no MD17 labels (fetched from a source without them, or
                by an older crmse).
        """
        if self.old_energies is None or self.old_forces is None:
            raise DataError(
                f"dataset {self.name!r} holds no original MD17 labels; fetch it again with "
                f"`crmse fetch rmd17 {self.name} --force` from an rMD17 source (it carries them)"
            )
        meta = {k: v for k, v in self.meta.items() if k not in ("name", "units", "format_version")}
        return Dataset(
            name=f"{self.name}-md17",
            species=self.species,
            positions=self.positions,
            energies=self.old_energies,
            forces=self.old_forces,
            frame_ids=self.frame_ids,
            splits=self.splits,
            meta={**meta, "labels": "md17", "labels_from": self.name},
        )

    def save(self, path: Path | str) -> None:
        """Write the dataset atomically."""
        arrays: dict[str, np.ndarray] = {
            "species": self.species.astype(np.int64),
            "positions": self.positions.astype(np.float64),
            "energies": self.energies.astype(np.float64),
            "forces": self.forces.astype(np.float64),
            "frame_ids": self.frame_ids.astype(np.int64),
        }
        for key, parts in self.splits.items():
            for part, idx in parts.items():
                arrays[f"split_{key}_{part}"] = np.asarray(idx, dtype=np.int64)
        if self.old_energies is not None and self.old_forces is not None:
            arrays["old_energies"] = self.old_energies.astype(np.float64)
            arrays["old_forces"] = self.old_forces.astype(np.float64)
        meta = dict(self.meta, name=self.name, units=UNITS, format_version=FORMAT_VERSION)
        arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path | str) -> Dataset:
        """Read a dataset file written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"dataset file {path} does not exist; fetch the dataset again")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                splits: dict[str, dict[str, np.ndarray]] = {}
                for key in z.files:
                    if key.startswith("split_"):
                        _, k, part = key.split("_", 2)
                        splits.setdefault(k, {})[part] = z[key]
                return cls(
                    name=meta["name"],
                    species=z["species"],
                    positions=z["positions"],
                    energies=z["energies"],
                    forces=z["forces"],
                    frame_ids=z["frame_ids"],
                    splits=splits,
                    meta=meta,
                    old_energies=z["old_energies"] if "old_energies" in z.files else None,
                    old_forces=z["old_forces"] if "old_forces" in z.files else None,
                )
        except NPZ_READ_ERRORS as exc:
            raise DataError(f"dataset file {path} is unreadable ({exc}); fetch it again") from exc


def normalize_split(key: str | int) -> str:
    """``1`` / ``"1"`` / ``"01"`` -> ``"01"``."""
    try:
        return f"{int(key):02d}"
    except (TypeError, ValueError):
        return str(key)


def validate_arrays(
    species: np.ndarray, positions: np.ndarray, energies: np.ndarray, forces: np.ndarray, name: str
) -> None:
    """Raise :class:`DataError` unless the arrays have consistent shapes and finite values."""
    if species.ndim != 1 or species.size == 0:
        raise DataError(f"{name}: species must be a non-empty 1-D array, got shape {species.shape}")
    n = species.shape[0]
    if positions.ndim != 3 or positions.shape[1:] != (n, 3):
        raise DataError(f"{name}: positions must have shape (frames, {n}, 3), got {positions.shape}")
    f = positions.shape[0]
    if energies.shape != (f,):
        raise DataError(f"{name}: energies must have shape ({f},), got {energies.shape}")
    if forces.shape != positions.shape:
        raise DataError(f"{name}: forces must have shape {positions.shape}, got {forces.shape}")
    for label, arr in (("positions", positions), ("energies", energies), ("forces", forces)):
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{name}: {label} contain non-finite values")
    if np.any(species <= 0) or np.any(species > 118):
        raise DataError(f"{name}: species must be atomic numbers in 1..118")


def random_splits(
    n_frames: int, seed: int = 0, n_splits: int = 5, max_part: int = 1000
) -> dict[str, dict[str, np.ndarray]]:
    """rMD17-like splits for a generated dataset: ``"01"``..``"05"``, train and test disjoint.

    rMD17 draws 1000 training and 1000 test frames per split from 100,000; the rest are the
    reference. Here each part holds ``min(max_part, n_frames // 4)`` frames (at least 1), so
    at least half of the frames are reference frames of each split; each split is an
    independent random draw (generator seeded with ``(seed, split)``).

    Returns:
        ``{"01": {"train": idx, "test": idx}, ...}`` with sorted int64 row indices.
    """
    if n_frames < 3:
        raise DataError(f"splits need at least 3 frames, got {n_frames}")
    part = max(1, min(max_part, n_frames // 4))
    out: dict[str, dict[str, np.ndarray]] = {}
    for k in range(1, n_splits + 1):
        perm = np.random.default_rng([seed, k]).permutation(n_frames)
        out[f"{k:02d}"] = {"train": np.sort(perm[:part]), "test": np.sort(perm[part : 2 * part])}
    return out
