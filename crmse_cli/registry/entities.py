"""The registry's plain objects: frozen copies of its rows, and the allowed run kinds and statuses.

These are what :class:`~crmse_cli.registry.store.Registry` returns (never ORM rows); importing
them needs no database. Run kinds and statuses are also check constraints of the ``runs`` table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crmse_cli.config import JsonDict
from crmse_cli.metric import Metric

RUN_KINDS = ("pretrain", "regularize", "sample", "evaluate", "compare", "reproduce", "diagnose")
"""Every kind of run; a new kind needs a migration of the ``ck_runs_kind`` constraint."""
STATUSES = ("queued", "running", "completed", "failed", "interrupted")
"""Every run status (``queued``: created by ``crmse sweep create``, not started yet); a new status
needs a migration of the ``ck_runs_status`` constraint."""


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset (a frozen copy of its row).

    Attributes:
        name: dataset name (rMD17: the molecule).
        source: where it came from (``file``, ``figshare``, ``andersx``, ``xyz``, ...).
        sha256: checksum of the dataset file.
        path: absolute path of the dataset npz.
        n_frames: F, frames.
        n_atoms: N, atoms per frame.
        species: (N,) atomic numbers.
        units: quantity -> unit string (``energy``: ``kcal/mol``, ...).
        splits: split key -> part -> number of frames.
        meta: provenance (source files and their checksums, ...).
        created: when it was registered (UTC).
    """

    name: str
    source: str
    sha256: str
    path: str
    n_frames: int
    n_atoms: int
    species: list[int]
    units: JsonDict
    splits: JsonDict
    meta: JsonDict
    created: datetime


@dataclass(frozen=True)
class RunInfo:
    """One run of a stage (a frozen copy of its row).

    Attributes:
        id: 8 hex characters.
        name: unique name, or None.
        kind: one of :data:`RUN_KINDS`.
        status: one of :data:`STATUSES`.
        dataset: the dataset name, or None.
        parent: the run this one starts from (model, sample), or None.
        config: the resolved config as JSON.
        config_hash: sha256 of ``config``.
        seed: the run's seed, or None.
        version: the package version that ran it.
        host: the machine that runs (or ran) it.
        pid: its process id on ``host``.
        started: start time (UTC).
        ended: end time (UTC), None while running.
        error: the one-line error of a failed or interrupted run.
    """

    id: str
    name: str | None
    kind: str
    status: str
    dataset: str | None
    parent: str | None
    config: JsonDict
    config_hash: str
    seed: int | None
    version: str
    host: str
    pid: int | None
    started: datetime
    ended: datetime | None
    error: str | None


MetricInfo = Metric
"""One logged metric value: :class:`crmse_cli.metric.Metric` (the registry sets its ``time``)."""


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint file of a run.

    Attributes:
        run_id: the run.
        path: absolute path of the file.
        sha256: its checksum.
        step: the epoch or update it holds.
        format_version: the checkpoint format's version.
        tag: ``best``, ``last`` or ``final``.
        created: when it was registered (UTC).
    """

    run_id: str
    path: str
    sha256: str
    step: int
    format_version: int
    tag: str
    created: datetime


@dataclass(frozen=True)
class ArtifactInfo:
    """A file a run produced.

    Attributes:
        run_id: the run.
        kind: artifact kind (``samples``, ``chains``, ``evaluation``, ``report``, ...).
        path: absolute path of the file.
        sha256: its checksum.
        meta: kind-specific details (e.g. the update of a chains file).
        created: when it was registered (UTC).
    """

    run_id: str
    kind: str
    path: str
    sha256: str
    meta: JsonDict
    created: datetime


__all__ = [
    "RUN_KINDS",
    "STATUSES",
    "ArtifactInfo",
    "CheckpointInfo",
    "DatasetInfo",
    "Metric",
    "MetricInfo",
    "RunInfo",
]
