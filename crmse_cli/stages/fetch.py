"""`crmse fetch`: get rMD17 (or an extended-XYZ file) into the workspace and register it.

The registry and the dataset folder change only when everything succeeded: the dataset file is
written atomically and registered last, so a failed fetch leaves both as they were.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmse_cli.data import rmd17
from crmse_cli.data.dataset import Dataset
from crmse_cli.data.download import fetch_file, sha256_of
from crmse_cli.data.sources import OFFICIAL_ARCHIVE, RemoteFile, andersx_files
from crmse_cli.data.xyz import read_xyz
from crmse_cli.errors import CrmseError
from crmse_cli.fileio import sha256_file
from crmse_cli.progress import make_progress
from crmse_cli.workspace import Workspace

log = logging.getLogger(__name__)
SOURCES = ("figshare", "andersx")


@dataclass(frozen=True)
class FetchResult:
    name: str
    path: Path
    n_frames: int
    n_atoms: int
    splits: dict[str, dict[str, int]]
    source: str
    already: bool


def _download(remote: RemoteFile, cache: Path) -> Path:
    with make_progress() as bar:
        task = bar.add_task(f"download {remote.filename}", total=remote.size, info="")

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total or remote.size, info=f"{done / 1e6:.0f} MB")

        return fetch_file(remote, cache, progress=progress)


def _register(ws: Workspace, reg: Any, data: Dataset, source: str, meta: dict[str, Any]) -> FetchResult:
    path = ws.datasets_dir / f"{data.name}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    data.save(path)
    splits = {k: {p: int(len(i)) for p, i in v.items()} for k, v in data.splits.items()}
    reg.add_dataset(name=data.name, source=source, sha256=sha256_file(path), path=str(path),
                    n_frames=data.n_frames, n_atoms=data.n_atoms, species=[int(z) for z in data.species],
                    units={"length": "A", "energy": "kcal/mol", "forces": "kcal/mol/A"}, splits=splits, meta=meta)
    return FetchResult(data.name, path, data.n_frames, data.n_atoms, splits, source, already=False)


def _existing(reg: Any, name: str) -> FetchResult | None:
    info = reg.find_dataset(name)
    if info is None or not Path(info.path).is_file() or sha256_file(info.path) != info.sha256:
        return None
    return FetchResult(info.name, Path(info.path), info.n_frames, info.n_atoms, info.splits, info.source, already=True)


def fetch_rmd17(ws: Workspace, molecule: str, *, source: str = "figshare", from_path: Path | None = None,
                force: bool = False, registry: Any = None) -> FetchResult:
    """Fetch rMD17 ``molecule`` (official archive, andersx split files, or a local file)."""
    from crmse_cli.registry.store import Registry

    rmd17.check_molecule(molecule)
    if source not in SOURCES:
        raise CrmseError(f"--source must be one of {', '.join(SOURCES)}, got {source!r}")
    reg = registry or Registry.open(ws.ensure())
    if not force and (done := _existing(reg, molecule)) is not None:
        return done
    if from_path is not None:
        from_path = Path(from_path).expanduser()
        if not from_path.is_file():
            raise CrmseError(f"cannot read {from_path}: no such file")
        origin = f"file:{from_path.resolve()}"
        archive_sha = sha256_of(from_path)
        if from_path.suffix == ".npz":
            arrays, splits = rmd17.read_npz(from_path)
        else:
            arrays, splits = rmd17.read_archive(from_path, molecule)
    elif source == "figshare":
        archive = _download(OFFICIAL_ARCHIVE, ws.cache_dir)
        origin, archive_sha = OFFICIAL_ARCHIVE.urls[0], OFFICIAL_ARCHIVE.sha256
        arrays, splits = rmd17.read_archive(archive, molecule)
    else:
        files = andersx_files(molecule)
        if not all(f.sha256 for f in files):
            raise CrmseError(f"no pinned checksums for andersx {molecule} files; use --source figshare or --from PATH")
        paths = {}
        for f in files:
            part, key = Path(f.filename).stem.rsplit("_", 2)[1:]
            paths[(part, key)] = _download(f, ws.cache_dir / "andersx")
        arrays, splits = rmd17.merge_split_files(paths)
        origin, archive_sha = "github.com/andersx/rmd17-npz", ""
    data = rmd17.to_dataset(molecule, arrays, splits, {"origin": origin, "source_sha256": archive_sha})
    return _register(ws, reg, data, origin, {"source_sha256": archive_sha, "kind": "rmd17"})


def fetch_xyz(ws: Workspace, path: Path, *, name: str, energy_unit: str, test_fraction: float = 0.0,
              split_seed: int = 0, force: bool = False, registry: Any = None) -> FetchResult:
    """Import an extended-XYZ file as dataset ``name``."""
    from crmse_cli.registry.store import Registry

    reg = registry or Registry.open(ws.ensure())
    if not name or "/" in name or name.startswith("."):
        raise CrmseError(f"--name {name!r} must be a plain file-name-like word")
    if not force and (done := _existing(reg, name)) is not None:
        return done
    data = read_xyz(Path(path).expanduser(), name=name, energy_unit=energy_unit, test_fraction=test_fraction,
                    split_seed=split_seed)
    src = f"file:{Path(path).expanduser().resolve()}"
    return _register(ws, reg, data, src, {"source_sha256": sha256_of(Path(path).expanduser()), "kind": "xyz",
                                          "energy_unit_in_file": energy_unit})
