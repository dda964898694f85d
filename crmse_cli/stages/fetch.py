"""`crmse fetch`: get rMD17 (or an extended-XYZ file) into the workspace and register it.

Downloads land in ``ws.cache_dir`` (verified, shared by all molecules); the converted dataset
is written to ``ws.datasets_dir/<name>.npz``. The dataset file takes its name and the registry
row is written only when everything succeeded, so a failed fetch leaves both as they were.
A fetch needs no run row: the datasets table records it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from crmse_cli.data import rmd17, sources
from crmse_cli.data.dataset import UNITS, Dataset
from crmse_cli.data.download import fetch_file
from crmse_cli.data.xyz import read_xyz
from crmse_cli.errors import CrmseError, DataError, NotFoundError
from crmse_cli.fileio import sha256_file
from crmse_cli.progress import make_progress
from crmse_cli.registry.store import Registry
from crmse_cli.workspace import Workspace

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from crmse_cli.registry.store import DatasetInfo

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class FetchResult:
    """A registered dataset and how this fetch got it.

    Attributes:
        name: dataset name (the molecule for rMD17).
        path: the dataset file.
        source: ``figshare``, ``andersx``, ``file`` (``--from``) or ``xyz``.
        origin: the URL or file the frames came from.
        sha256: checksum of the dataset file.
        n_frames, n_atoms, species: frames, atoms per frame, atomic numbers (N,).
        splits: ``{"01": {"train": count, "test": count}, ...}``.
        already: True when the dataset was registered already and nothing was done.
    """

    name: str
    path: Path
    source: str
    origin: str
    sha256: str
    n_frames: int
    n_atoms: int
    species: list[int]
    splits: dict[str, dict[str, int]]
    already: bool


def _mb_callback(bar: Progress, task: TaskID) -> Callable[[int, int | None], None]:
    def update(done: int, total: int | None) -> None:
        bar.update(task, completed=done / 1e6, total=None if total is None else total / 1e6)

    return update


@contextmanager
def _progress(description: str, total_bytes: int | None) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar in MB; yields ``update(bytes_done, bytes_total_or_None)``."""
    with make_progress() as bar:
        task = bar.add_task(
            f"{description} (MB)", total=None if total_bytes is None else total_bytes / 1e6, info=""
        )
        yield _mb_callback(bar, task)


def _download(remote: sources.RemoteFile, cache: Path) -> Path:
    with _progress(f"download {remote.filename}", remote.size) as update:
        return fetch_file(remote, cache, progress=update)


def _result(info: DatasetInfo, already: bool) -> FetchResult:
    return FetchResult(
        name=info.name,
        path=Path(info.path),
        source=str(info.meta.get("source", "")),
        origin=info.source,
        sha256=info.sha256,
        n_frames=info.n_frames,
        n_atoms=info.n_atoms,
        species=list(info.species),
        splits=dict(info.splits),
        already=already,
    )


def _existing(reg: Registry, name: str) -> DatasetInfo | None:
    """The registry row of ``name`` if its dataset file is still there and intact, else None."""
    info = reg.find_dataset(name)
    if info is None or not Path(info.path).is_file() or sha256_file(info.path) != info.sha256:
        return None
    return info


def _save_and_register(
    ws: Workspace, reg: Registry, data: Dataset, *, origin: str, meta: Mapping[str, object]
) -> FetchResult:
    """Write the dataset beside its final name, register it, then rename it into place."""
    final = ws.datasets_dir / f"{data.name}.npz"
    tmp = final.with_name(f".{final.name}.fetching")
    data.save(tmp)
    try:
        digest = sha256_file(tmp)
        splits = {k: {p: int(len(i)) for p, i in v.items()} for k, v in data.splits.items()}
        info = reg.add_dataset(
            name=data.name,
            source=origin,
            sha256=digest,
            path=str(final),
            n_frames=data.n_frames,
            n_atoms=data.n_atoms,
            species=[int(z) for z in data.species],
            units=dict(UNITS),
            splits=splits,
            meta=meta,
        )
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("registered dataset %s (%d frames) at %s", data.name, data.n_frames, final)
    return _result(info, already=False)


def _check_readable(path: Path, check: str = "the path given to --from") -> Path:
    """``path`` resolved, or a one-line refusal saying what to ``check`` (where the path came from)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise NotFoundError(f"cannot read {path}: no such file or folder; check {check}")
    if not os.access(path, os.R_OK):
        raise CrmseError(f"cannot read {path}: permission denied; make it readable or copy it elsewhere")
    return path.resolve()


def _check_andersx(files: Iterable[Path]) -> dict[str, str]:
    """sha256 of local andersx split files; raise unless each matches its pinned checksum."""
    digests: dict[str, str] = {}
    for path in files:
        got = digests[path.name] = sha256_file(path)
        pinned = sources.ANDERSX_SHA256.get(path.name)
        if pinned is None:
            log.warning("%s has no pinned checksum; using it unverified", path)
        elif got != pinned:
            raise DataError(
                f"{path}: sha256 {got[:12]}... does not match the pinned {pinned[:12]}... of the "
                "andersx file (corrupt or modified); copy or download it again"
            )
    return digests


def _read_rmd17(
    ws: Workspace, molecule: str, source: str, from_path: Path | None
) -> tuple[Dataset, str, Mapping[str, object]]:
    """Get ``molecule``'s frames from the chosen source: (dataset, origin, registry meta)."""
    meta: dict[str, object] = {"kind": "rmd17", "molecule": molecule}
    if from_path is not None and (andersx := rmd17.local_andersx_files(from_path, molecule)) is not None:
        digests = _check_andersx(andersx.values())
        raw = rmd17.read_andersx(andersx)
        origin = f"file:{from_path}"
        meta.update(source="file", source_file=str(from_path), source_sha256=digests)
    elif from_path is not None:
        size = from_path.stat().st_size if from_path.is_file() else None
        with _progress(f"read {from_path.name}", size) as update:
            raw = rmd17.read_local(from_path, molecule, progress=lambda done: update(done, size))
        origin = f"file:{from_path}"
        meta.update(
            source="file",
            source_file=str(from_path),
            source_sha256=sha256_file(from_path) if from_path.is_file() else None,
        )
    elif source == "figshare":
        remote = sources.OFFICIAL_ARCHIVE
        archive = _download(remote, ws.cache_dir)
        with _progress(f"extract {molecule} from {remote.filename}", remote.size) as update:
            raw = rmd17.read_archive(archive, molecule, progress=lambda done: update(done, remote.size))
        origin = remote.urls[0]
        meta.update(
            source="figshare",
            source_file=remote.filename,
            source_sha256=remote.sha256,
            urls=list(remote.urls),
        )
    else:
        remotes = sources.andersx_files(molecule)
        cache = ws.cache_dir / "andersx-rmd17-npz"
        paths = {key: _download(remote, cache) for key, remote in remotes.items()}
        raw = rmd17.read_andersx(paths)
        origin = sources.ANDERSX_BASE
        meta.update(source="andersx", source_sha256={r.filename: r.sha256 for r in remotes.values()})
    kept = "old_energies" in raw.arrays and "old_forces" in raw.arrays
    meta.update(old_labels_in_source=raw.old_keys, old_labels_kept=kept, frame_ids=raw.frame_id_kind)
    data = rmd17.to_dataset(
        molecule, raw, {"origin": origin, "source": meta["source"], "source_sha256": meta["source_sha256"]}
    )
    return data, origin, meta


def fetch_rmd17(
    ws: Workspace,
    molecule: str,
    *,
    source: str = "figshare",
    from_path: Path | str | None = None,
    force: bool = False,
) -> FetchResult:
    """Fetch rMD17 ``molecule`` with its five official splits and register it as dataset ``molecule``.

    Args:
        ws: the workspace (cache, datasets folder, registry).
        molecule: one of :data:`crmse_cli.data.sources.MOLECULES`.
        source: ``figshare`` (the official 1 GB archive, downloaded once for all molecules) or
            ``andersx`` (the ten 1000-frame split files; ethanol and aspirin).
        from_path: a local archive, official npz, andersx split file or folder (offline machines);
            overrides ``source``.
        force: convert and register again even if the dataset is registered already.

    Returns:
        What was registered; ``already=True`` when it was there and nothing was done.
    """
    sources.check_molecule(molecule)
    if source not in sources.SOURCES:
        raise CrmseError(f"--source must be one of {', '.join(sources.SOURCES)}, got {source!r}")
    if source == "andersx" and from_path is None:
        sources.andersx_files(molecule)  # refuses molecules without pinned checksums, before any work
    path = _check_readable(Path(from_path)) if from_path is not None else None
    reg = Registry.open(ws)
    try:
        info = None if force else _existing(reg, molecule)
        if info is not None:
            if info.meta.get("kind") != "rmd17":
                raise CrmseError(
                    f"dataset {molecule!r} is registered from {info.source}, not rMD17; "
                    "pass --force to replace it"
                )
            log.info("dataset %s is already fetched (%s)", molecule, info.path)
            return _result(info, already=True)
        data, origin, meta = _read_rmd17(ws, molecule, source, path)
        return _save_and_register(ws, reg, data, origin=origin, meta=meta)
    finally:
        reg.close()


XYZ_IDENTITY = (
    "kind",
    "source_sha256",
    "energy_unit_in_file",
    "test_fraction",
    "split_seed",
    "energy_key",
    "forces_key",
)
"""The meta fields of an extended-XYZ dataset that make two imports the same dataset."""


def same_xyz(info: DatasetInfo, meta: Mapping[str, object]) -> bool:
    """Whether registered dataset ``info`` is the import that ``meta`` describes.

    Same file content, units, keys and split: the fields of :data:`XYZ_IDENTITY`.
    """
    return all(info.meta.get(k) == meta.get(k) for k in XYZ_IDENTITY)


def fetch_xyz(
    ws: Workspace,
    path: Path | str,
    *,
    name: str,
    energy_unit: str,
    test_fraction: float | None = None,
    split_seed: int | None = None,
    force: bool = False,
    energy_key: str | None = None,
    forces_key: str | None = None,
    taken_hint: str = "pick another --name or pass --force to replace it",
) -> FetchResult:
    """Import an extended-XYZ file as dataset ``name`` (energies and forces converted to kcal/mol).

    Args:
        ws: the workspace.
        path: the extended-XYZ file (energy on each comment line, forces per atom).
        name: dataset name (letters, digits, ``_.-``).
        energy_unit: the file's energy unit, ``eV`` or ``kcal/mol`` (forces per Å).
        test_fraction: share of frames in the test part of one random split ``"01"``; when it
            and ``split_seed`` are both None the dataset has no splits.
        split_seed: seed of that random split (see :func:`crmse_cli.data.xyz.read_xyz`).
        force: replace a dataset of the same name.
        energy_key: the file's energy key (e.g. MACE's ``REF_energy``); None: found as
            ``read_xyz`` says.
        forces_key: the file's forces column (e.g. ``REF_forces``); None: as ``read_xyz`` says.
        taken_hint: what the refusal of a name registered with other content tells the user to
            do, in the options of the command that called (``mace import`` has no ``--force``).
    """
    if not _NAME_RE.match(name):
        raise CrmseError(f"--name {name!r} is not a valid dataset name; use letters, digits, '_', '.', '-'")
    src = _check_readable(Path(path), check="the file's path")
    file_sha = sha256_file(src) if src.is_file() else ""
    meta: dict[str, object] = {
        "kind": "xyz",
        "source": "xyz",
        "source_file": str(src),
        "source_sha256": file_sha,
        "energy_unit_in_file": energy_unit,
        "test_fraction": test_fraction,
        "split_seed": split_seed,
        "energy_key": energy_key,
        "forces_key": forces_key,
    }
    reg = Registry.open(ws)
    try:
        info = None if force else _existing(reg, name)
        if info is not None:
            if not same_xyz(info, meta):
                raise CrmseError(f"dataset {name!r} is registered already (from {info.source}); {taken_hint}")
            return _result(info, already=True)
        data = read_xyz(
            src,
            name=name,
            energy_unit=energy_unit,
            test_fraction=test_fraction,
            split_seed=split_seed,
            energy_key=energy_key,
            forces_key=forces_key,
        )
        return _save_and_register(ws, reg, data, origin=f"file:{src}", meta=meta)
    finally:
        reg.close()
