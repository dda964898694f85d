"""Resolving what a command was pointed at: a registry run or a checkpoint file, and its data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from crmse_cli.data.dataset import Dataset, normalize_split
from crmse_cli.errors import CrmseError, DataError, NotFoundError
from crmse_cli.fileio import sha256_file
from crmse_cli.model.checkpoint import load_checkpoint
from crmse_cli.model.checkpoint_extra import CheckpointExtra
from crmse_cli.model.forces import ForceFn, force_field
from crmse_cli.model.potential import Potential
from crmse_cli.registry.store import next_step

if TYPE_CHECKING:
    from crmse_cli.registry.entities import ArtifactInfo, DatasetInfo
    from crmse_cli.registry.store import Registry, RunInfo
    from crmse_cli.workspace import Workspace

MODEL_KINDS = ("pretrain", "regularize")
CHECKPOINT_PREFERENCE = ("final", "best", "last")
"""Which checkpoint of a model run stands for the run: the end state, else the best on
validation, else the latest."""


@dataclass(frozen=True, eq=False)
class ModelHandle:
    """A loaded potential with where it came from.

    Attributes:
        potential: the model, on its device.
        extra: the checkpoint's provenance and its writer's state (:class:`CheckpointExtra`).
        checkpoint: the file it was loaded from.
        run: the model run, None for a bare checkpoint file.
        dataset: the dataset it was trained on; split: that dataset's split.
        trusted: the checkpoint's pickled code may run (see code_trusted).
        model_config: the checkpoint's ModelConfig as written (what a run that starts from it records).
    """

    potential: Potential
    extra: CheckpointExtra
    checkpoint: Path
    run: RunInfo | None  # the model run, None for a bare checkpoint file
    dataset: str
    split: str
    trusted: bool = False
    model_config: Mapping[str, object] = field(default_factory=dict)

    @property
    def species(self) -> np.ndarray | None:
        """(N,) atomic numbers of the molecule the model was trained on, if the checkpoint says."""
        sp = self.extra.species
        return None if sp is None else np.asarray(sp, dtype=np.int64)

    @property
    def device(self) -> torch.device:
        return next(self.potential.parameters()).device


def sampler_forces(ws: Workspace, potential: Potential, species: torch.Tensor) -> ForceFn:
    """The force function of a sampler or of the CRMSE chains: compiled when the workspace asks.

    ``ws.compile_forces`` (``--compile``) compiles it, kernels cached in ``ws.compile_cache_dir``.
    """
    return force_field(potential, species, compiled=ws.compile_forces, cache_dir=ws.compile_cache_dir)


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


def verify_dataset(info: DatasetInfo) -> Path:
    """The file of registered dataset ``info`` if it still has its recorded checksum, else refuse.

    A dataset file changed after ``fetch`` (other energies in a valid npz) would otherwise train
    and evaluate without a word; only ``crmse doctor`` noticed.
    """
    path = Path(info.path)
    if not path.is_file():
        raise NotFoundError(
            f"dataset {info.name!r}: file {path} is missing; fetch it again (`crmse fetch ... --force`)"
        )
    if sha256_file(path) != info.sha256:
        raise DataError(
            f"dataset {info.name!r}: file {path} does not match the checksum recorded when it was "
            "registered (changed or damaged); fetch it again with --force"
        )
    return path


def written_here(registry: Registry, path: Path | str, run_id: str) -> bool:
    """Whether ``path`` lies in run ``run_id``'s own folder of this workspace (links resolved).

    That is where crmse writes a run's checkpoints; a registry row that points elsewhere (a
    shared database, a row written by hand) does not make a file crmse's own.
    """
    if registry.runs_dir is None:
        return False
    folder = (registry.runs_dir / run_id).resolve()
    return Path(path).resolve().is_relative_to(folder)


def code_trusted(registry: Registry, path: Path | str, run_id: str | None, *, trust_code: bool) -> bool:
    """Whether a checkpoint whose checksum was verified may run the code it stores (MACE, modules).

    The trust model (docs/architecture.md): the user said so (``--trust-code``), or the file is
    a registered checkpoint of run ``run_id`` (checksum already verified by the caller) in that
    run's folder of this workspace, i.e. crmse wrote it.

    Args:
        registry: the open registry (its ``runs_dir`` is the workspace's).
        path: the checkpoint file.
        run_id: the run whose registered, verified checkpoint ``path`` is; None for a foreign file.
        trust_code: the user's ``--trust-code``.
    """
    return trust_code or (run_id is not None and written_here(registry, path, run_id))


def run_checkpoint(registry: Registry, run: RunInfo) -> Path:
    """The verified checkpoint file that stands for model run ``run`` (see CHECKPOINT_PREFERENCE)."""
    ckpts = registry.checkpoints(run.id)
    for tag in CHECKPOINT_PREFERENCE:
        tagged = [c for c in ckpts if c.tag == tag]
        if tagged:
            return verify_checkpoint(tagged[-1].path, tagged[-1].sha256)

    if run.status in ("interrupted", "failed", "running"):  # stopped before its first save
        raise NotFoundError(
            f"run {run.id} ({run.kind}, {run.status}) stopped before it saved a checkpoint: nothing "
            f"to resume; start it again (the same command with another --name)"
        )
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


def _registered_owner(registry: Registry, path: Path) -> str | None:
    """The run whose registered checkpoint ``path`` is, after checking its checksum; None if unknown."""
    if not path.is_file():
        return None
    known = registry.checkpoint_at(str(path)) or registry.checkpoint_at(str(path.resolve()))
    if known is None:
        return None
    verify_checkpoint(path, known.sha256)  # a file the registry wrote: check it is still the same
    return known.run_id


def resolve_model(
    registry: Registry,
    ref: str,
    *,
    device: str = "cpu",
    dtype: str | None = None,
    trust_code: bool = False,
) -> ModelHandle:
    """Load the potential named by ``ref``: a checkpoint path, or a run id / name.

    Args:
        registry: the open registry.
        ref: a checkpoint file, or a run id / name (a model run, or a run with one behind it).
        device: where to put the weights.
        dtype: "float32" or "float64" to override the checkpoint's.
        trust_code: the user's ``--trust-code``: a checkpoint that stores code (MACE, your own
            module) loads even when crmse did not write it in this workspace (:func:`code_trusted`).
    """
    path = Path(ref).expanduser()
    run = None
    if path.suffix in (".pt", ".pth", ".ckpt") or path.is_file():
        checkpoint = path
        owner = _registered_owner(registry, path)
    else:
        named = registry.get_run(ref)
        if named.kind == "sample" and named.parent is None and named.config.get("checkpoint"):
            checkpoint = Path(named.config["checkpoint"])  # sampled from a bare checkpoint file
            owner = _registered_owner(registry, checkpoint)
        else:
            run = model_run_of(registry, named)
            checkpoint = run_checkpoint(registry, run)
            owner = run.id
    _check_device(device)
    trusted = code_trusted(registry, checkpoint, owner, trust_code=trust_code)
    potential, payload = load_checkpoint(checkpoint, device=device, dtype=dtype, trust_code=trusted)
    extra = CheckpointExtra.of(payload, where=f"checkpoint {checkpoint}")
    config = run.config if run is not None else {}
    dataset = extra.dataset or config.get("dataset")
    split = extra.split or config.get("split") or "01"
    if not dataset:
        raise CrmseError(
            f"checkpoint {checkpoint} does not name its dataset; pass a checkpoint written by crmse pretrain"
        )
    written = payload.get("config")
    return ModelHandle(
        potential,
        extra,
        checkpoint,
        run,
        str(dataset),
        normalize_split(split),
        trusted,
        dict(written) if isinstance(written, Mapping) else {},
    )


def load_dataset(registry: Registry, name: str) -> Dataset:
    """The registered dataset ``name`` (NotFoundError with the fix when absent)."""
    info = registry.find_dataset(name)
    if info is None:
        raise NotFoundError(f"dataset {name!r} is not in the registry; run `crmse fetch rmd17 {name}` first")
    return Dataset.load(verify_dataset(info))


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
