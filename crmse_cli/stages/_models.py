"""Resolving what a command was pointed at: a registry run or a checkpoint file, and its data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from crmse_cli.data.dataset import Dataset, normalize_split
from crmse_cli.errors import CrmseError, DataError, NotFoundError
from crmse_cli.fileio import sha256_file
from crmse_cli.model.checkpoint import load_checkpoint
from crmse_cli.model.potential import Potential

if TYPE_CHECKING:
    from crmse_cli.registry.entities import ArtifactInfo
    from crmse_cli.registry.store import Registry, RunInfo

MODEL_KINDS = ("pretrain", "regularize")
CHECKPOINT_PREFERENCE = ("final", "best", "last")
"""Which checkpoint of a model run stands for the run: the end state, else the best on
validation, else the latest."""


@dataclass(frozen=True, eq=False)
class ModelHandle:
    """A loaded potential with where it came from."""

    potential: Potential
    payload: dict[str, Any]
    checkpoint: Path
    run: RunInfo | None  # the model run, None for a bare checkpoint file
    dataset: str
    split: str

    @property
    def species(self) -> np.ndarray | None:
        """(N,) atomic numbers of the molecule the model was trained on, if the checkpoint says."""
        sp = self.payload.get("extra", {}).get("species")
        return None if sp is None else np.asarray(sp, dtype=np.int64)

    @property
    def device(self) -> torch.device:
        return next(self.potential.parameters()).device


def verify_checkpoint(path: Path | str, sha256: str) -> Path:
    """``path`` if the file still has the checksum recorded when it was written, else refuse.

    Raises:
        NotFoundError: the file is gone.
        DataError: the file changed or is corrupt (one line naming it).
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"checkpoint {path} is registered but missing; restore the file or rerun the run")
    if sha256_file(path) != sha256:
        raise DataError(
            f"checkpoint {path} does not match the checksum recorded when it was written (corrupt or "
            "changed); restore it from a backup or rerun the run"
        )
    return path


def verify_artifact(artifact: ArtifactInfo) -> Path:
    """The path of a registered artifact whose file still has its recorded checksum, else refuse."""
    path = Path(artifact.path)
    if not path.is_file():
        raise NotFoundError(
            f"{artifact.kind} file {path} of run {artifact.run_id} is missing; run that step again"
        )
    if sha256_file(path) != artifact.sha256:
        raise DataError(
            f"{artifact.kind} file {path} of run {artifact.run_id} does not match its recorded checksum "
            "(truncated or changed); run that step again"
        )
    return path


def run_checkpoint(registry: Registry, run: RunInfo) -> Path:
    """The verified checkpoint file that stands for model run ``run`` (see CHECKPOINT_PREFERENCE)."""
    ckpts = registry.checkpoints(run.id)
    for tag in CHECKPOINT_PREFERENCE:
        tagged = [c for c in ckpts if c.tag == tag]
        if tagged:
            return verify_checkpoint(tagged[-1].path, tagged[-1].sha256)
    from crmse_cli.registry.store import next_step

    raise NotFoundError(
        f"run {run.id} ({run.kind}, {run.status}) has no checkpoint; {next_step(run.kind, run.id)}"
    )


def model_run_of(registry: Registry, run: RunInfo) -> RunInfo:
    """The model run behind ``run``: itself for pretrain/regularize, the parent for sample runs."""
    seen = 0
    while run.kind not in MODEL_KINDS:
        if run.parent is None or seen > 4:
            raise CrmseError(
                f"run {run.id} is a {run.kind} run with no model behind it; pass a pretrain or regularize run"
            )
        run = registry.get_run(run.parent)
        seen += 1
    return run


def resolve_model(
    registry: Registry, ref: str, *, device: str = "cpu", dtype: str | None = None
) -> ModelHandle:
    """Load the potential named by ``ref``: a checkpoint path, or a run id / name."""
    path = Path(ref).expanduser()
    run = None
    if path.suffix in (".pt", ".pth", ".ckpt") or path.is_file():
        checkpoint = path
        known = (
            registry.checkpoint_at(str(path)) or registry.checkpoint_at(str(path.resolve()))
            if path.is_file()
            else None
        )
        if known is not None:  # a file the registry wrote: check it is still the same
            verify_checkpoint(path, known.sha256)
    else:
        named = registry.get_run(ref)
        if named.kind == "sample" and named.parent is None and named.config.get("checkpoint"):
            checkpoint = Path(named.config["checkpoint"])  # sampled from a bare checkpoint file
        else:
            run = model_run_of(registry, named)
            checkpoint = run_checkpoint(registry, run)
    _check_device(device)
    potential, payload = load_checkpoint(checkpoint, device=device, dtype=dtype)
    extra = payload.get("extra", {})
    config = run.config if run is not None else {}
    dataset = extra.get("dataset") or config.get("dataset")
    split = extra.get("split") or config.get("split") or "01"
    if not dataset:
        raise CrmseError(
            f"checkpoint {checkpoint} does not name its dataset; pass a checkpoint written by crmse pretrain"
        )
    return ModelHandle(potential, payload, checkpoint, run, str(dataset), normalize_split(split))


def load_dataset(registry: Registry, name: str) -> Dataset:
    """The registered dataset ``name`` (NotFoundError with the fix when absent)."""
    info = registry.find_dataset(name)
    if info is None:
        raise NotFoundError(f"dataset {name!r} is not in the registry; run `crmse fetch rmd17 {name}` first")
    return Dataset.load(info.path)


def _check_device(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CrmseError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise CrmseError(f"--device must be cpu or cuda[:n], got {device!r}")


def check_species(handle: ModelHandle, data: Dataset) -> None:
    """Refuse a model and a dataset of different molecules."""
    elements = set(int(z) for z in data.species)
    known = handle.species
    if (known is not None and list(known) != list(data.species)) or not elements <= set(
        handle.potential.species
    ):
        raise CrmseError(
            f"the model was trained on another molecule than dataset {data.name!r}; pick the matching dataset"
        )
