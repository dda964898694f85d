"""Which labels a model trains on: the dataset's own (rMD17) or the original MD17 labels of its frames.

The rMD17 frames were sampled by MD on the original MD17 surface (PBE+vdW-TS) and relabelled at
PBE/def2-SVP, so they are not a Boltzmann sample of the surface they are labelled with (their virial
temperature with rMD17 forces is ~-86 K for ethanol, ~540 K with the MD17 forces). Training on the
MD17 labels gives a model of the surface the frames were drawn from. The MD17 labels are registered
as a dataset of their own, ``<molecule>-md17`` (same frames, splits and frame ids), so every later
stage (sample, evaluate, compare, diagnose) follows the checkpoint's dataset and compares against
the same labels it trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from crmse_cli.data.dataset import Dataset
from crmse_cli.errors import CrmseError
from crmse_cli.stages._models import verify_dataset
from crmse_cli.stages.fetch import _save_and_register
from crmse_cli.workspace import Workspace

if TYPE_CHECKING:
    from crmse_cli.registry.store import Registry

LABELS = ("rmd17", "md17")
"""``rmd17``: the dataset's own labels (rMD17's for rMD17 datasets); ``md17``: the original MD17 ones."""
SUFFIX = "-md17"


def dataset_for_labels(ws: Workspace, reg: Registry, dataset: str, labels: str) -> str:
    """The registered dataset holding ``dataset``'s frames with ``labels``; registers it if needed.

    Args:
        ws: the workspace (datasets folder).
        reg: an open Registry.
        dataset: a registered dataset name, e.g. ``ethanol``.
        labels: one of :data:`LABELS`.

    Returns:
        ``dataset`` for ``rmd17``; ``<dataset>-md17`` for ``md17``, derived from ``dataset`` (again
        when ``dataset`` was fetched anew since).

    Raises:
        CrmseError: unknown ``labels``; DataError: ``dataset`` holds no MD17 labels.
    """
    if labels not in LABELS:
        raise CrmseError(f"--labels must be one of {', '.join(LABELS)}, got {labels!r}")
    if labels == "rmd17" or dataset.endswith(SUFFIX):
        return dataset

    base = reg.get_dataset(dataset)
    name = f"{dataset}{SUFFIX}"
    have = reg.find_dataset(name)
    if have is not None and have.meta.get("labels_from_sha256") == base.sha256 and Path(have.path).is_file():
        return name
    data = Dataset.load(verify_dataset(base)).with_md17_labels()
    meta = {
        **base.meta,
        "kind": "md17-labels",
        "labels": "md17",
        "labels_from": dataset,
        "labels_from_sha256": base.sha256,
    }
    _save_and_register(ws, reg, data, origin=f"original MD17 labels of dataset {dataset}", meta=meta)
    return name
