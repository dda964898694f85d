"""Bring your own MACE model: import it with its training set as a model run, export results back.

``import_mace`` registers an extended-XYZ training file (eV, eV/Å, MACE's key names) as a dataset
and a mace-torch ``.model`` file as a completed model run of kind ``pretrain`` whose config
says ``architecture: mace`` and ``imported_from: <file>``. Its ``final`` checkpoint holds the
MACE model, so ``regularize``, ``sample``, ``evaluate`` and ``compare`` take the run like any
other. ``save_native`` writes a MACE run's model back in mace-torch's format as the run's
``mace_model`` artifact; ``export_model`` writes any MACE run's model to a path of your choice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from crmse_cli.config import to_dict
from crmse_cli.data.dataset import Dataset
from crmse_cli.errors import CrmseError, UsageError
from crmse_cli.fileio import check_output_path, sha256_file
from crmse_cli.metric import metric_rows
from crmse_cli.model.checkpoint import FORMAT_VERSION, save_checkpoint
from crmse_cli.model.checkpoint_extra import CheckpointExtra
from crmse_cli.model.mace_adapter import export_mace, is_mace, load_mace_model, mace_potential
from crmse_cli.registry.store import Registry
from crmse_cli.stages._models import load_dataset, resolve_model, run_checkpoint
from crmse_cli.stages._run import tracked
from crmse_cli.stages.fetch import fetch_xyz
from crmse_cli.train.accuracy import test_metrics
from crmse_cli.workspace import Workspace

IMPORT_TEST_FRACTION = 0.1
"""Share of the imported frames held out as split 01's test part (test metrics); the rest train."""
NATIVE_ARTIFACT = "mace_model"
"""Artifact kind of a run's model in mace-torch's format."""


@dataclass(frozen=True)
class ImportResult:
    """An imported MACE model run."""

    run_id: str
    dataset: str
    checkpoint: Path
    metrics: dict[str, tuple[float, str]]


def _dataset_name(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem) or "imported"


def import_mace(
    ws: Workspace,
    model_path: Path | str,
    data_path: Path | str | None,
    *,
    dataset: str | None = None,
    energy_unit: str = "eV",
    energy_key: str | None = None,
    forces_key: str | None = None,
    test_fraction: float = IMPORT_TEST_FRACTION,
    split_seed: int = 0,
    val_fraction: float = 0.0,
    name: str | None = None,
    registry: Registry | None = None,
    taken_hint: str = "pass --dataset NAME to import the file under another name",
) -> ImportResult:
    """Register a mace-torch model and the extended-XYZ file it was trained on as a model run.

    Args:
        ws: the workspace.
        model_path: the ``.model`` file (``torch.save(model)`` as mace-torch writes it).
        data_path: its extended-XYZ training file (one molecule; energies and forces in
            ``energy_unit`` and per Å); None: ``dataset`` names a registered dataset.
        dataset: the dataset name (default: the file's stem); an identical import is reused.
        energy_unit: "eV" (MACE's) or "kcal/mol".
        energy_key: the file's energy key, e.g. ``REF_energy``.
        forces_key: the file's forces key, e.g. ``REF_forces``.
        test_fraction: share of frames in the test part of the random split 01 (the train part
            is CRMSE's data).
        split_seed: seed of that split.
        val_fraction: share of the train part kept out of CRMSE's data as validation frames
            (what ``regularize --force-budget`` scores candidates on; seeded by ``split_seed``).
        name: a unique run name; without one, a completed import of the same file (sha256) on
            the same dataset is reused.
        registry: an open Registry (default: ``Registry.open(ws)``).
        taken_hint: what to do when ``dataset`` is registered with other frames or settings, in
            the caller's options (``mace import --dataset`` by default).

    Returns:
        The completed run (kind ``pretrain``, ``architecture: mace``) and its test metrics.
    """
    model_path = Path(model_path).expanduser().resolve()
    if data_path is None and dataset is None:
        raise CrmseError("pass the extended-XYZ training file or the name of a registered dataset")
    potential = mace_potential(load_mace_model(model_path, trust_code=ws.trust_code))
    data_name = dataset or _dataset_name(Path(str(data_path)))
    model_sha = sha256_file(model_path)
    if data_path is not None:
        fetch_xyz(
            ws,
            Path(data_path).expanduser(),
            name=data_name,
            energy_unit=energy_unit,
            test_fraction=test_fraction,
            split_seed=split_seed,
            energy_key=energy_key,
            forces_key=forces_key,
            taken_hint=taken_hint,
        )
    reg = registry or Registry.open(ws.ensure())
    data = load_dataset(reg, data_name)
    missing = sorted(set(data.species.tolist()) - set(potential.species))
    if missing:
        raise CrmseError(
            f"dataset {data_name!r} has atomic number(s) {missing} that the MACE model does not know "
            f"(its z table: {potential.species}); pass the file the model was trained on"
        )
    train, val = _train_val(data, val_fraction, split_seed)
    if name is None:
        for old in reg.list_runs(kind="pretrain"):  # the same file on the same data: reuse its run
            same = old.config.get("imported_sha256") == model_sha and old.dataset == data_name
            same = same and float(old.config.get("val_fraction", 0.0)) == val_fraction
            if same and old.status == "completed":
                metrics = {k: (m.value, m.unit) for k, m in reg.final_metrics(old.id).items()}
                return ImportResult(old.id, data_name, Path(run_checkpoint(reg, old)), metrics)
    config = {
        "dataset": data_name,
        "split": "01",
        "architecture": "mace",
        "model": to_dict(potential.config),
        "n_train": int(len(train)),
        "imported_from": str(model_path),
        "imported_sha256": model_sha,
        "val_fraction": val_fraction,
    }
    run = reg.create_run(kind="pretrain", name=name, dataset=data_name, config=config, seed=None)
    with tracked(reg, run.id):
        path = ws.run_dir(run.id) / "checkpoints" / "final.pt"
        extra = CheckpointExtra(
            dataset=data_name,
            split="01",
            species=tuple(int(z) for z in data.species),
            train_indices=np.asarray(train, dtype=np.int64),
            val_indices=np.asarray(val, dtype=np.int64),
            imported_from=str(model_path),
        )
        sha = save_checkpoint(path, potential, extra=extra)
        reg.add_checkpoint(
            run.id, path=str(path), sha256=sha, step=0, format_version=FORMAT_VERSION, tag="final"
        )
        handle = resolve_model(reg, str(path))
        metrics = test_metrics(handle.potential, data, handle.split)
        reg.log_metrics(run.id, metric_rows(metrics, split="test"))
    return ImportResult(run.id, data_name, path, metrics)


def _train_val(data: Dataset, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split 01's train part into (training rows, validation rows): a seeded ``val_fraction``."""
    train, _ = data.split("01")
    if not 0.0 <= val_fraction < 1.0:
        raise CrmseError(f"the validation fraction must lie in [0, 1), got {val_fraction}")
    n_val = int(round(val_fraction * len(train)))
    if val_fraction > 0 and not 1 <= n_val < len(train):
        raise CrmseError(
            f"{len(train)} training frames cannot spare {val_fraction:g} of them for validation; "
            "pass a file with more frames"
        )
    order = np.random.default_rng(seed).permutation(len(train))
    return np.sort(train[order[n_val:]]), np.sort(train[order[:n_val]])


def save_native(ws: Workspace, reg: Registry, run_id: str, potential: torch.nn.Module) -> Path | None:
    """For a MACE potential: write it in mace-torch's format as run ``run_id``'s artifact."""
    if not is_mace(potential):
        return None
    path = export_mace(potential, ws.run_dir(run_id) / "artifacts" / "mace.model")
    reg.add_artifact(run_id, kind=NATIVE_ARTIFACT, path=str(path), sha256=sha256_file(path))
    return path


def export_model(ws: Workspace, ref: str, path: Path | str, *, registry: Registry | None = None) -> Path:
    """Write the MACE model of run (or checkpoint) ``ref`` to ``path`` in mace-torch's format."""
    check_output_path(path)  # before the model loads: a link or a device is never replaced
    reg = registry or Registry.open(ws.ensure())
    handle = resolve_model(reg, ref, trust_code=ws.trust_code)
    if not is_mace(handle.potential):
        raise CrmseError(f"{ref} is a {handle.potential.config.architecture} model; only MACE models export")
    return export_mace(handle.potential, path)


def import_from_options(
    ws: Workspace,
    model_path: Path,
    data_path: Path | None,
    source: str | None,
    energy_key: str | None,
    forces_key: str | None,
) -> str:
    """``regularize --from-model M --data X``: import (or reuse) M with X; return the run id."""
    if source is not None:
        raise UsageError("pass either --from RUN_OR_CHECKPOINT or --from-model FILE --data XYZ, not both")
    if data_path is None:
        raise UsageError("--from-model needs --data TRAIN.xyz, the extended-XYZ file the model was fitted to")
    taken = (
        "import the file under another name first (crmse mace import MODEL --data FILE --dataset NAME), "
        "then pass --from RUN"
    )
    return import_mace(
        ws, model_path, data_path, energy_key=energy_key, forces_key=forces_key, taken_hint=taken
    ).run_id
