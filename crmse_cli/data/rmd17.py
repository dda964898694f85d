"""rMD17 files -> crmse :class:`Dataset`: the official archive (streamed), a bare npz, or andersx splits.

Official layout (``rmd17.tar.bz2``)::

    rmd17/npz_data/rmd17_<molecule>.npz    keys nuclear_charges (N,), coords (F,N,3) Å,
                                           energies (F,) kcal/mol, forces (F,N,3) kcal/mol/Å,
                                           old_indices, old_energies, old_forces
    rmd17/splits/index_{train,test}_0{1..5}.csv   row indices into every molecule's npz

Only the requested molecule's npz and the split files are read, streaming through the tar in one
pass (nothing is unpacked to disk). rMD17's units are crmse's, so no conversion happens.
``old_energies`` and ``old_forces`` (the original MD17 labels of the same frames, another level of
theory, in the same kcal/mol and kcal/mol/Å) are kept beside the rMD17 labels, never mixed with
them: ``crmse pretrain --labels md17`` trains on them (as dataset ``<molecule>-md17``).
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from crmse_cli.data.dataset import Dataset, validate_arrays
from crmse_cli.data.sources import N_SPLITS, andersx_name, check_formula
from crmse_cli.errors import DataError
from crmse_cli.fileio import NPZ_READ_ERRORS

REQUIRED_KEYS = ("nuclear_charges", "coords", "energies", "forces")
OLD_KEYS = ("old_indices", "old_energies", "old_forces")
_SPLIT_RE = re.compile(r"(?:^|/)splits/index_(train|test)_(\d+)\.csv$")
_ANDERSX_RE = re.compile(r"^rmd17_([a-z]+)_(train|test)_(\d\d)\.npz$")

Splits = dict[str, dict[str, np.ndarray]]
"""``{"01": {"train": rows, "test": rows}}``."""


@dataclass
class RawRmd17:
    """What an rMD17 source holds for one molecule, before conversion (rMD17 keys and units)."""

    arrays: dict[str, np.ndarray]  # REQUIRED_KEYS, plus old_indices when present
    splits: Splits = field(default_factory=dict)
    old_keys: list[str] = field(default_factory=list)  # which OLD_KEYS the source had
    frame_ids: np.ndarray | None = None  # None: the rows of the official npz (0..F-1)
    frame_id_kind: str = "row of the official rmd17_<molecule>.npz"


class _CountingReader:
    """A read-only file wrapper that reports how many bytes were read (for a progress bar)."""

    def __init__(self, fh: IO[bytes], progress: Callable[[int], None] | None) -> None:
        self._fh, self._progress, self.done = fh, progress, 0

    def read(self, size: int = -1) -> bytes:
        block = self._fh.read(size)
        self.done += len(block)
        if self._progress is not None:
            self._progress(self.done)
        return block


def _load_npz(source: bytes | Path, where: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """The required arrays (and old_indices) of an rMD17 npz, checked; plus the old_* keys it has."""
    try:
        with np.load(io.BytesIO(source) if isinstance(source, bytes) else source, allow_pickle=False) as z:
            missing = [k for k in REQUIRED_KEYS if k not in z.files]
            if missing:
                raise DataError(
                    f"{where} lacks the rMD17 keys {', '.join(missing)} "
                    f"(needs {', '.join(REQUIRED_KEYS)}); pass an unmodified rMD17 npz"
                )
            arrays = {k: np.asarray(z[k]) for k in (*REQUIRED_KEYS, *OLD_KEYS) if k in z.files}
            old_keys = [k for k in OLD_KEYS if k in z.files]
    except DataError:
        raise
    except NPZ_READ_ERRORS as exc:
        raise DataError(
            f"{where} is not a readable npz file ({type(exc).__name__}: {exc}); download or copy it again"
        ) from exc
    for key in ("energies", "old_energies"):
        energies = arrays.get(key)
        if energies is not None and energies.ndim == 2 and energies.shape[1] == 1:  # MD17 stores (F, 1)
            arrays[key] = energies[:, 0]
    try:
        validate_arrays(
            arrays["nuclear_charges"], arrays["coords"], arrays["energies"], arrays["forces"], where
        )
    except DataError as exc:
        raise DataError(f"{exc}; pass an unmodified rMD17 npz") from exc
    old = arrays.get("old_indices")
    if old is not None and old.shape != arrays["energies"].shape:
        raise DataError(f"{where}: old_indices has shape {old.shape}, expected {arrays['energies'].shape}")
    if "old_energies" in arrays and "old_forces" in arrays:
        try:
            validate_arrays(
                arrays["nuclear_charges"],
                arrays["coords"],
                arrays["old_energies"],
                arrays["old_forces"],
                where,
            )
        except DataError as exc:
            raise DataError(
                f"{exc} (the MD17 labels old_energies/old_forces); pass an unmodified rMD17 npz"
            ) from exc
    else:  # one without the other is of no use: keep neither
        arrays.pop("old_energies", None)
        arrays.pop("old_forces", None)
    return arrays, old_keys


def _csv_rows(blob: bytes, where: str) -> np.ndarray:
    try:
        rows = np.loadtxt(io.StringIO(blob.decode()), dtype=np.int64, ndmin=1, delimiter=",")
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{where} is not a list of row indices ({exc}); use the official split files"
        ) from exc
    return rows.reshape(-1)


def _complete(splits: Splits, where: str) -> Splits:
    """Splits sorted by key; raise unless all five have a train and a test part."""
    for k in range(1, N_SPLITS + 1):
        parts = splits.get(f"{k:02d}", {})
        for part in ("train", "test"):
            if part not in parts:
                raise DataError(
                    f"{where} lacks the split file index_{part}_{k:02d}.csv; "
                    "is it the official rMD17 archive?"
                )
    return {k: splits[k] for k in sorted(splits)}


def read_archive(path: Path, molecule: str, *, progress: Callable[[int], None] | None = None) -> RawRmd17:
    """The molecule's arrays and the five official splits, streamed out of an official-layout tar.

    Args:
        path: ``rmd17.tar.bz2`` (or any tar with ``npz_data/`` and ``splits/``; compression auto-detected).
        molecule: an rMD17 molecule name.
        progress: optional callback with the number of compressed bytes read so far.
    """
    want = f"/npz_data/rmd17_{molecule}.npz"
    arrays: dict[str, np.ndarray] | None = None
    old_keys: list[str] = []
    splits: Splits = {}
    try:
        with (
            open(path, "rb") as raw,
            tarfile.open(
                fileobj=_CountingReader(raw, progress),  # type: ignore[call-overload]
                mode="r|*",
            ) as tar,
        ):
            for member in tar:
                if not member.isfile():
                    continue
                split = _SPLIT_RE.search(member.name)
                if not (f"/{member.name}".endswith(want) or split):
                    continue
                fh = tar.extractfile(member)
                blob = fh.read() if fh is not None else b""
                where = f"{path.name}:{member.name}"
                if split:
                    part, key = split.group(1), f"{int(split.group(2)):02d}"
                    splits.setdefault(key, {})[part] = _csv_rows(blob, where)
                else:
                    arrays, old_keys = _load_npz(blob, where)
                if arrays is not None and sum(len(v) for v in splits.values()) >= 2 * N_SPLITS:
                    break  # all we need: stop reading the rest of the archive
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise DataError(
            f"{path} is not a complete, readable tar archive ({type(exc).__name__}: {exc}); download it again"
        ) from exc
    if arrays is None:
        raise DataError(f"{path} holds no rmd17{want}; pass the official rMD17 archive (rmd17.tar.bz2)")
    return RawRmd17(arrays, _complete(splits, str(path)), old_keys)


def read_molecule_npz(path: Path) -> RawRmd17:
    """A bare official ``rmd17_<molecule>.npz``; splits come from ``../splits/`` when it is there."""
    arrays, old_keys = _load_npz(path, str(path))
    split_dir = path.parent.parent / "splits"
    splits: Splits = {}
    for k in range(1, N_SPLITS + 1):
        files = {p: split_dir / f"index_{p}_{k:02d}.csv" for p in ("train", "test")}
        if all(f.is_file() for f in files.values()):
            splits[f"{k:02d}"] = {p: _csv_rows(f.read_bytes(), str(f)) for p, f in files.items()}
    return RawRmd17(arrays, splits, old_keys)


def read_andersx(files: dict[tuple[str, str], Path]) -> RawRmd17:
    """Andersx split files ``{("train" | "test", "01"): path}`` -> one frame set plus the splits.

    Frames that occur in several files (training splits overlap) are kept once, ordered by their
    MD17 trajectory index (``old_indices``), which also becomes the dataset's ``frame_ids``.
    """
    loaded = {key: _load_npz(path, str(path)) for key, path in sorted(files.items())}
    species = None
    for key, (arrays, _) in loaded.items():
        if "old_indices" not in arrays:
            raise DataError(f"{files[key]} lacks old_indices; pass the andersx rMD17 split files")
        if species is None:
            species = arrays["nuclear_charges"]
        elif not np.array_equal(species, arrays["nuclear_charges"]):
            raise DataError(f"{files[key]} holds another molecule than {next(iter(files.values()))}")
    assert species is not None
    all_old = np.concatenate([a["old_indices"].astype(np.int64) for a, _ in loaded.values()])
    unique, first = np.unique(all_old, return_index=True)
    labels = ["coords", "energies", "forces"]
    if all("old_energies" in a for a, _ in loaded.values()):
        labels += ["old_energies", "old_forces"]
    merged = {k: np.concatenate([a[k] for a, _ in loaded.values()])[first] for k in labels}
    energies = np.concatenate([a["energies"] for a, _ in loaded.values()])
    if not np.array_equal(energies, merged["energies"][np.searchsorted(unique, all_old)]):
        raise DataError("the andersx files disagree on the energy of a frame they share; download them again")
    splits: Splits = {}
    for (part, split_key), (arrays, _) in loaded.items():
        rows = np.searchsorted(unique, arrays["old_indices"].astype(np.int64))
        splits.setdefault(split_key, {})[part] = rows.astype(np.int64)
    merged["nuclear_charges"] = species
    old_keys = sorted(set.intersection(*(set(k) for _, k in loaded.values())))
    return RawRmd17(
        merged,
        _complete(splits, "the andersx files"),
        old_keys,
        frame_ids=unique,
        frame_id_kind="MD17 trajectory index (old_indices)",
    )


def andersx_siblings(path: Path, molecule: str) -> dict[tuple[str, str], Path]:
    """The ten andersx split files of ``molecule`` in the folder ``path`` (or beside the file ``path``)."""
    folder = path if path.is_dir() else path.parent
    files = {
        (p, f"{k:02d}"): folder / andersx_name(molecule, p, k)
        for p in ("train", "test")
        for k in range(1, N_SPLITS + 1)
    }
    missing = [f.name for f in files.values() if not f.is_file()]
    if missing:
        raise DataError(
            f"{folder} lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}; "
            "put all ten andersx split files of the molecule in one folder"
        )
    return files


def local_andersx_files(path: Path, molecule: str) -> dict[tuple[str, str], Path] | None:
    """The andersx split files :func:`read_local` reads for ``path``; None for another layout."""
    if path.is_dir() and not (path / "npz_data" / f"rmd17_{molecule}.npz").is_file():
        return andersx_siblings(path, molecule)
    if path.is_file() and _ANDERSX_RE.match(path.name):
        return andersx_siblings(path, molecule)
    return None


def read_local(path: Path, molecule: str, *, progress: Callable[[int], None] | None = None) -> RawRmd17:
    """Any local rMD17 source for ``--from``: archive, official npz, andersx file or folder."""
    andersx = local_andersx_files(path, molecule)
    if andersx is not None:
        return read_andersx(andersx)
    if path.is_dir():
        return read_molecule_npz(path / "npz_data" / f"rmd17_{molecule}.npz")
    if path.suffix == ".npz":
        return read_molecule_npz(path)
    return read_archive(path, molecule, progress=progress)


def to_dataset(molecule: str, raw: RawRmd17, meta: dict[str, Any]) -> Dataset:
    """A crmse Dataset of ``molecule`` (validated: formula, shapes, finite values, split ranges).

    Args:
        molecule: rMD17 molecule name; also the dataset name.
        raw: what the source held (see :class:`RawRmd17`).
        meta: provenance stored in the dataset file (source, checksums).
    """
    a = raw.arrays
    species = np.asarray(a["nuclear_charges"], dtype=np.int64)
    check_formula(molecule, species.tolist(), meta.get("origin", "the source"))
    n = int(a["energies"].shape[0])
    frame_ids = raw.frame_ids if raw.frame_ids is not None else np.arange(n)
    old_e, old_f = a.get("old_energies"), a.get("old_forces")
    return Dataset(
        name=molecule,
        species=species,
        positions=np.asarray(a["coords"], dtype=np.float64),
        energies=np.asarray(a["energies"], dtype=np.float64),
        forces=np.asarray(a["forces"], dtype=np.float64),
        frame_ids=np.asarray(frame_ids, dtype=np.int64),
        splits={k: {p: np.asarray(i, dtype=np.int64) for p, i in v.items()} for k, v in raw.splits.items()},
        meta={
            **meta,
            "molecule": molecule,
            "frame_ids": raw.frame_id_kind,
            "old_labels_in_source": raw.old_keys,
            "old_labels_kept": old_e is not None,
        },
        old_energies=None if old_e is None else np.asarray(old_e, dtype=np.float64),
        old_forces=None if old_f is None else np.asarray(old_f, dtype=np.float64),
    )
