"""`crmse fetch xtb`: generate an exact-temperature GFN-xTB reference locally and register it.

The frames come from Langevin dynamics on the xTB surface (:mod:`crmse_cli.data.xtb_md`), are
labelled with xTB, split like rMD17 (:func:`crmse_cli.data.dataset.random_splits`), checked
for their temperature (:func:`crmse_cli.analysis.stats.ensemble_check`) and registered with
their provenance. Replica checkpoints live in ``ws.cache_dir / "xtb" / <name>``: running the
same command again continues an interrupted generation; they are deleted once the dataset is
registered.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Mapping
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from crmse_cli.analysis.stats import ensemble_check
from crmse_cli.config import JsonDict
from crmse_cli.data.dataset import Dataset, random_splits
from crmse_cli.data.geometries import builtin_geometry
from crmse_cli.data.xtb import hutchinson_laplacians, require_tblite, tblite_version
from crmse_cli.data.xtb_md import ReplicaResult, ReplicaTask, XtbMDConfig, run_replicas
from crmse_cli.errors import CrmseError, NotFoundError
from crmse_cli.progress import make_progress
from crmse_cli.registry.store import Registry
from crmse_cli.stages._models import verify_dataset
from crmse_cli.stages.fetch import _NAME_RE, FetchResult, _result, _save_and_register
from crmse_cli.validate import check_option
from crmse_cli.workspace import Workspace

log = logging.getLogger(__name__)

ASE_NAMES = {"ethanol": "CH3CH2OH", "methanol": "CH3OH", "acetaldehyde": "CH3CHO", "benzene": "C6H6"}
"""Common names -> ASE's molecule names (any name of ``ase.build.molecule`` works as it is)."""
TCONF_FRAMES = 200
"""Frames (evenly spaced) whose laplacian is estimated for T_conf: two force calls each."""


@dataclass(frozen=True)
class XtbFetchResult:
    """A generated, registered xTB dataset.

    Attributes:
        fetch: the registered dataset (as ``crmse fetch rmd17`` reports it).
        check: the ensemble check of the labels (:meth:`EnsembleCheck.to_dict`).
        check_sampling: the same on the sampling surface when the labels come from another
            method (None otherwise).
        wall_s: wall seconds of this call.
        force_calls: xTB force calls made by this call (dynamics and labels).
        ms_per_force_call: wall ms per force call per process.
        frames_per_s: frames generated per wall second by this call.
    """

    fetch: FetchResult
    check: Mapping[str, object] | None
    check_sampling: Mapping[str, object] | None
    wall_s: float
    force_calls: int
    ms_per_force_call: float
    frames_per_s: float


def default_name(molecule: str, cfg: XtbMDConfig) -> str:
    """``<molecule>-xtb`` for GFN2 at 500 K; the method, labels and temperature otherwise."""
    if (cfg.method, cfg.label, cfg.temperature_K) == ("gfn2", "gfn2", 500.0):
        return f"{molecule}-xtb"
    label = "" if cfg.label == cfg.method else f"-{cfg.label}label"
    return f"{molecule}-xtb-{cfg.method}{label}-{cfg.temperature_K:g}K"


def start_geometry(
    ws: Workspace, molecule: str, start_from: str | Path | None
) -> tuple[np.ndarray, np.ndarray, str]:
    """(species (N,), positions (N, 3) Å, origin) of the first frame of every replica.

    ``start_from`` is an xyz (or any ASE-readable) file, or a registered dataset (its frame 0);
    without it, ``molecule`` is a built-in geometry (:mod:`crmse_cli.data.geometries`: aspirin)
    or looked up in ASE's molecule collection.
    """
    builtin = builtin_geometry(molecule) if start_from is None else None
    if builtin is not None:
        return builtin[0], builtin[1], f"builtin:{molecule}"
    if start_from is None:
        from ase.build import molecule as ase_molecule

        try:
            atoms = ase_molecule(ASE_NAMES.get(molecule, molecule))
        except KeyError:
            raise CrmseError(
                f"no built-in geometry for {molecule!r}; pass --start-from DATASET or --start-from FILE.xyz"
            ) from None
        return atoms.numbers.astype(np.int64), atoms.positions.astype(np.float64), f"ase:{molecule}"
    path = Path(start_from).expanduser()
    if path.is_file():
        from ase.io import read

        try:
            atoms = read(path, index=0)
            assert not isinstance(atoms, list)
        except Exception as exc:
            raise CrmseError(f"cannot read a geometry from {path}: {exc}") from exc
        return atoms.numbers.astype(np.int64), atoms.positions.astype(np.float64), f"file:{path.resolve()}"

    reg = Registry.open(ws.ensure())
    try:
        info = reg.find_dataset(str(start_from))
    finally:
        reg.close()
    if info is None:
        raise NotFoundError(f"--start-from {start_from!r} is neither a file nor a registered dataset")

    data = Dataset.load(verify_dataset(info))
    return data.species, data.positions[0], f"dataset:{info.name}"


def _key(cfg: XtbMDConfig, species: np.ndarray, start: np.ndarray) -> str:
    blob = json.dumps(
        {"config": cfg.identity(), "species": species.tolist(), "start": np.round(start, 8).tolist()},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _prepare_cache(folder: Path, key: str, force: bool) -> None:
    spec = folder / "key.txt"
    if folder.exists() and (force or not spec.is_file() or spec.read_text().strip() != key):
        if not force and spec.is_file():
            raise CrmseError(
                f"an unfinished generation with other settings is cached in {folder}; rerun it with its "
                "settings to finish it, or pass --force to discard it"
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec.write_text(key)


def _run(tasks: list[ReplicaTask], processes: int, in_process: bool) -> list[ReplicaResult]:
    total = sum(t.config.steps_of(t.replica) for t in tasks)
    frames = sum(t.config.frames_of(t.replica) for t in tasks)
    steps: dict[int, int] = {}
    kept: dict[int, int] = {}
    with make_progress() as bar:
        task = bar.add_task("xTB Langevin (steps)", total=total, info="")

        def update(replica: int, step: int, n_kept: int) -> None:
            steps[replica], kept[replica] = step, n_kept
            bar.update(task, completed=sum(steps.values()), info=f"{sum(kept.values())}/{frames} frames")

        try:
            return run_replicas(tasks, processes, update, in_process=in_process)
        except BrokenProcessPool as exc:  # a worker was killed (OOM killer, kill -9)
            cache = Path(tasks[0].checkpoint).parent if tasks and tasks[0].checkpoint else "the cache"
            raise CrmseError(
                f"an xTB worker process died ({exc}); the replicas' checkpoints are kept in {cache}: "
                "rerun the same command to continue"
            ) from exc


def _check(
    results: list[ReplicaResult], species: np.ndarray, method: str, cfg: XtbMDConfig, sampling: bool
) -> dict[str, object]:
    x = np.concatenate([r.positions for r in results])
    e = np.concatenate([r.sample_energies if sampling else r.energies for r in results])
    f = np.concatenate([r.sample_forces if sampling else r.forces for r in results])
    sub = np.unique(np.linspace(0, len(x) - 1, min(TCONF_FRAMES, len(x))).astype(np.int64))
    lap = hutchinson_laplacians(species, x[sub], method, seed=cfg.seed)
    return ensemble_check(x, f, e, cfg.temperature_K, tconf=(f[sub], lap), seed=cfg.seed).to_dict()


def fetch_xtb(
    ws: Workspace,
    molecule: str,
    config: XtbMDConfig | None = None,
    *,
    start_from: str | Path | None = None,
    name: str | None = None,
    processes: int = 1,
    force: bool = False,
    in_process: bool = False,
) -> XtbFetchResult:
    """Generate (or continue generating) an xTB reference ensemble and register it.

    Args:
        ws: the workspace.
        molecule: the molecule's name (ASE's collection without ``start_from``).
        config: sampling and labelling settings (default :class:`XtbMDConfig`).
        start_from: an xyz file or a registered dataset to take the start geometry from.
        name: dataset name (default :func:`default_name`).
        processes: worker processes, one OpenMP thread each (replicas run in parallel).
        force: discard a cached unfinished generation with other settings, and replace a
            registered dataset of the same name.
        in_process: run the replicas in this process (tests).

    Returns:
        What was registered, with the ensemble check and the speed; an identical dataset that is
        registered already is returned as it is (``fetch.already``).
    """
    check_option("--processes", processes)  # before any folder or row exists
    require_tblite()
    cfg = config or XtbMDConfig()
    name = name or default_name(molecule, cfg)
    if not _NAME_RE.match(name):
        raise CrmseError(f"--name {name!r} is not a valid dataset name; use letters, digits, '_', '.', '-'")
    species, start, origin = start_geometry(ws, molecule, start_from)
    key = _key(cfg, species, start)
    reg = Registry.open(ws.ensure())
    try:
        info = reg.find_dataset(name)
        if info is not None and not force:
            if info.meta.get("kind") == "xtb" and info.meta.get("key") == key and Path(info.path).is_file():
                m = info.meta
                return XtbFetchResult(
                    _result(info, already=True),
                    m.get("ensemble_check"),
                    m.get("ensemble_check_sampling"),
                    0.0,
                    0,
                    float("nan"),
                    float("nan"),
                )
            raise CrmseError(
                f"dataset {name!r} is registered already with other settings; "
                "pick another --name or pass --force to replace it"
            )
        folder = ws.cache_dir / "xtb" / name
        _prepare_cache(folder, key, force)
        tasks = [
            ReplicaTask(species, start, cfg, k, key, str(folder / f"replica-{k:03d}.npz"))
            for k in range(cfg.replicas)
        ]
        t0 = time.perf_counter()
        try:
            results = _run(tasks, processes, in_process)
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: every started replica wrote its checkpoint
            exc.crmse_message = (  # type: ignore[attr-defined]  # the CLI's last line
                f"generation of {name} stopped; its replica checkpoints are kept in {folder}: "
                "rerun the same command to continue"
            )
            raise
        gen_s = time.perf_counter() - t0
        calls = sum(r.force_calls for r in results)
        check = _check(results, species, cfg.label, cfg, sampling=False)
        check_s = (
            _check(results, species, cfg.method, cfg, sampling=True) if cfg.label != cfg.method else None
        )
        ms_per_call = 1000.0 * sum(r.wall_s for r in results) / max(calls, 1)
        meta = {
            "kind": "xtb",
            "source": "xtb",
            "molecule": molecule,
            "start": origin,
            "key": key,
            **cfg.identity(),
            "tblite_version": tblite_version(),
            "generation_wall_s": gen_s,
            "resumed_from_steps": [r.resumed_from_step for r in results],
            "force_calls": calls,
            "ms_per_force_call": ms_per_call,
            "processes": processes,
            "ensemble_check": check,
            "ensemble_check_sampling": check_s,
            "splits_rule": "5 random splits; train and test each min(1000, frames // 4) frames",
        }
        data = _dataset(name, species, results, cfg, meta)
        fetched = _save_and_register(
            ws, reg, data, origin=f"xtb:{cfg.method}/{cfg.label}@{origin}", meta=meta
        )
        shutil.rmtree(folder, ignore_errors=True)
    finally:
        reg.close()
    # Frames a resumed replica had already kept were not generated by this call.
    before = sum(max(0, (r.resumed_from_step - cfg.equilibration_steps) // cfg.stride) for r in results)
    frames_new = sum(len(r.energies) for r in results) - before
    log.info("%s: %s", name, check_summary(check))
    return XtbFetchResult(
        fetched, check, check_s, time.perf_counter() - t0, calls, ms_per_call, frames_new / max(gen_s, 1e-9)
    )


def _dataset(
    name: str, species: np.ndarray, results: list[ReplicaResult], cfg: XtbMDConfig, meta: Mapping[str, object]
) -> Dataset:
    positions = np.concatenate([r.positions for r in results])
    return Dataset(
        name=name,
        species=species,
        positions=positions,
        energies=np.concatenate([r.energies for r in results]),
        forces=np.concatenate([r.forces for r in results]),
        frame_ids=np.arange(len(positions), dtype=np.int64),
        splits=random_splits(len(positions), cfg.seed),
        meta=dict(meta),
    )


def check_summary(check: Mapping[str, object]) -> str:
    """One plain line: each temperature estimate with its error bar, against the set temperature."""
    parts = [
        f"{k} {v['value_K']:.0f} +- {v['error_K']:.0f} K{'' if v['passed'] else ' (miss)'}"
        for k, v in check.items()
        if isinstance(v, dict)
    ]
    verdict = "reads" if check["passed"] else "does NOT read"
    return f"ensemble {verdict} {check['temperature_K']:g} K: " + ", ".join(parts)


def result_dict(res: XtbFetchResult) -> JsonDict:
    """JSON-ready form of a result (the CLI's ``--json``)."""
    return asdict(res)
