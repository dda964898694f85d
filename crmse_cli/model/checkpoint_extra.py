"""The typed part of a checkpoint's ``extra``: what the model is and where it came from.

Every writer of a checkpoint (pretraining, a regularize run, the force budget's candidates, a MACE
import) builds one :class:`CheckpointExtra`; every reader (``sample``, ``evaluate``,
``regularize``, a pretrain resume) reads its attributes. What only the writer's own resume reads
(the optimiser, schedule and RNG states, a regularize run's chains) stays an opaque mapping,
``state``, handed back to the trainer that wrote it.

On disk the record is the flat dict it always was (``to_dict``: the state's keys beside the
named ones), plus ``extra_version``. A checkpoint written before the version existed
(before 2026-12-07) has the same keys: it reads as version 0 with the same meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from crmse_cli.errors import CrmseError, DataError

EXTRA_VERSION = 1
"""The layout of ``extra`` this crmse writes (0: unversioned, same keys)."""
VERSION_KEY = "extra_version"


@dataclass(frozen=True, eq=False)
class CheckpointExtra:
    """A checkpoint's provenance, typed; ``state`` holds what only its writer's resume reads.

    Attributes:
        stage: "pretrain" for pretraining's own checkpoints (a resumable ``last`` holds its
            optimiser in ``state``); None for the others.
        dataset: the registered dataset the model was trained on.
        split: the split of that dataset ("01", ...).
        species: (N,) atomic numbers of the molecule.
        config: the pretrain run's PretrainConfig as recorded (``config.to_dict``); None for an
            imported model.
        train_indices: (F_train,) dataset rows the model was fitted to.
        val_indices: (F_val,) dataset rows it was validated on.
        imported_from: the MACE model file an imported model came from.
        regularize_run: the regularize run that wrote the checkpoint.
        budget_candidate: the update a force-budget candidate was saved at.
        budget_choice: the force budget's choice, in a regularize run's ``final`` checkpoint.
        state: the writer's resume state by name (tensors and plain types).
        version: the layout version (:data:`EXTRA_VERSION` when written by this crmse).
    """

    stage: str | None = None
    dataset: str | None = None
    split: str | None = None
    species: tuple[int, ...] | None = None
    config: Mapping[str, object] | None = None
    train_indices: np.ndarray | None = None
    val_indices: np.ndarray | None = None
    imported_from: str | None = None
    regularize_run: str | None = None
    budget_candidate: int | None = None
    budget_choice: Mapping[str, object] | None = None
    state: Mapping[str, object] = field(default_factory=dict)
    version: int = EXTRA_VERSION

    def to_dict(self) -> dict[str, object]:
        """The flat ``extra`` written into the file (None fields left out)."""
        out: dict[str, object] = dict(self.state)
        for name in _NAMED:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "species":
                value = list(value)
            elif name in ("train_indices", "val_indices"):
                value = torch.as_tensor(np.asarray(value, dtype=np.int64))
            elif isinstance(value, Mapping):
                value = dict(value)
            out[name] = value
        out[VERSION_KEY] = self.version
        return out

    @classmethod
    def from_dict(cls, extra: Mapping[str, object], *, where: str) -> CheckpointExtra:
        """The record of a checkpoint's ``extra`` (``where``: the file, for the error message)."""
        version = extra.get(VERSION_KEY, 0)
        if not isinstance(version, int) or version > EXTRA_VERSION:
            raise CrmseError(
                f"{where} has checkpoint extra version {version!r}, newer than this crmse reads "
                f"({EXTRA_VERSION}); upgrade crmse"
            )
        state = {k: v for k, v in extra.items() if k not in _NAMED and k != VERSION_KEY}
        try:
            return cls(
                stage=_text(extra.get("stage")),
                dataset=_text(extra.get("dataset")),
                split=_text(extra.get("split")),
                species=_ints(extra.get("species")),
                config=_table(extra.get("config"), "config"),
                train_indices=_rows(extra.get("train_indices")),
                val_indices=_rows(extra.get("val_indices")),
                imported_from=_text(extra.get("imported_from")),
                regularize_run=_text(extra.get("regularize_run")),
                budget_candidate=_int(extra.get("budget_candidate")),
                budget_choice=_table(extra.get("budget_choice"), "budget_choice"),
                state=state,
                version=version,
            )
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where} holds an inconsistent checkpoint extra ({exc}); re-create it") from exc

    @classmethod
    def of(cls, payload: Mapping[str, object], *, where: str) -> CheckpointExtra:
        """The record of a loaded checkpoint payload (``load_checkpoint``'s second value)."""
        extra = payload.get("extra")
        return cls.from_dict(extra if isinstance(extra, Mapping) else {}, where=where)


_NAMED = tuple(f.name for f in fields(CheckpointExtra) if f.name not in ("state", "version"))


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _int(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int | np.integer | torch.Tensor):
        raise TypeError(f"{value!r} is not an integer")
    return int(value)


def _ints(value: object) -> tuple[int, ...] | None:
    return None if value is None else tuple(int(z) for z in np.asarray(value, dtype=np.int64).ravel())


def _rows(value: object) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        value = value.cpu().numpy()
    return np.asarray(value, dtype=np.int64)


def _table(value: object, key: str) -> Mapping[str, object] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"{key} is {type(value).__name__}, not a table")
    return dict(value)
