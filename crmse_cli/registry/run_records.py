"""Typed, frozen records of what a run recorded, one per run kind that is read back (torch-free).

A run's config is stored as JSON (``RunInfo.config``); its readers (``crmse show``, the report)
take it through these records instead of reading keys. Each record holds the run's settings as
the config dataclass that declared them (one idea, one place: ``PretrainConfig``,
``ContrastiveConfig``, ``BudgetConfig``), built by :func:`crmse_cli.config.from_dict` after the
fix-ups of :mod:`crmse_cli.registry.compat`, plus the few facts the stage recorded beside them.
A field the run lacks and no fix-up explains is a :class:`~crmse_cli.errors.CrmseError` naming the
run and the field, never a silent default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from crmse_cli.config import from_dict
from crmse_cli.errors import CrmseError
from crmse_cli.registry import compat
from crmse_cli.sampling.sample_config import SampleConfig
from crmse_cli.train.budget import BudgetConfig
from crmse_cli.train.contrastive_config import ContrastiveConfig
from crmse_cli.train.pretrain_config import PretrainConfig

T = TypeVar("T")


def _settings(cls: type[T], owner: str, table: Mapping[str, object]) -> T:
    """``cls`` from the keys of ``table`` it declares (a recorded config also holds the run's facts)."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return from_dict(cls, {k: v for k, v in table.items() if k in known}, owner)


def _optional_str(owner: str, config: Mapping[str, object], key: str) -> str | None:
    value = config.get(key)
    if value is not None and not isinstance(value, str):
        raise CrmseError(f"{owner} records {key!r} as {value!r}, not text; run the step again")
    return value


@dataclass(frozen=True)
class PretrainRecord:
    """A pretrain run trained here (not an imported model), as its config records it.

    Attributes:
        run_id: the run.
        settings: its PretrainConfig. ``settings.n_train`` is the config's ``n_train``, the frames
            trained on (under the old ``val_fraction`` rule both training and validation frames).
        split: the split whose training part it drew its frames from.
        n_train_frames: frames trained on.
        n_val_frames: frames validated on.
        val_frames_sha256: the validation rows' digest; None for runs before 2026-12-07.
    """

    run_id: str
    settings: PretrainConfig
    split: str
    n_train_frames: int
    n_val_frames: int
    val_frames_sha256: str | None

    @classmethod
    def of(cls, run_id: str, config: Mapping[str, object]) -> PretrainRecord:
        """The record of pretrain run ``run_id`` from its recorded ``config``."""
        owner = f"pretrain run {run_id}'s config"
        return cls(
            run_id=run_id,
            settings=_settings(PretrainConfig, owner, config),
            split=str(compat.required(owner, config, "split")),
            n_train_frames=int(compat.required_number(owner, config, "n_train_frames")),
            n_val_frames=int(compat.required_number(owner, config, "n_val_frames")),
            val_frames_sha256=_optional_str(owner, config, "val_frames_sha256"),
        )


@dataclass(frozen=True)
class RegularizeRecord:
    """A regularize run that has started (a queued sweep run records only its options).

    Attributes:
        run_id: the run.
        contrastive: its ContrastiveConfig (settings it predates: :func:`compat.regularize_contrastive`).
        budget: its BudgetConfig (runs before the force budget: off).
        lambda_: its lambda, convention and internal weight (:func:`compat.lambda_setting`).
    """

    run_id: str
    contrastive: ContrastiveConfig
    budget: BudgetConfig
    lambda_: compat.LambdaSetting

    @classmethod
    def of(cls, run_id: str, config: Mapping[str, object]) -> RegularizeRecord:
        """The record of regularize run ``run_id`` from its recorded ``config``."""
        owner = f"regularize run {run_id}'s config"
        return cls(
            run_id=run_id,
            contrastive=_settings(
                ContrastiveConfig, f"{owner}, contrastive", compat.regularize_contrastive(config)
            ),
            budget=_settings(BudgetConfig, f"{owner}, budget", compat.regularize_budget(config)),
            lambda_=compat.lambda_setting(run_id, config),
        )


@dataclass(frozen=True)
class ModelRunRecord:
    """What a model run (pretrain, imported or regularize) records of the model it made.

    Attributes:
        run_id: the run.
        n_train: frames L_MSE trained on (under pretraining's old ``val_fraction`` rule, both
            training and validation frames; an imported model: the frames not held for validation).
        architecture: the model's architecture ("painn", "schnet", "mace").
    """

    run_id: str
    n_train: int
    architecture: str

    @classmethod
    def of(cls, run_id: str, kind: str, config: Mapping[str, object]) -> ModelRunRecord:
        """The record of model run ``run_id`` of ``kind`` from its recorded ``config``."""
        owner = f"{kind} run {run_id}'s config"
        model = compat.required(owner, config, "model")
        if not isinstance(model, Mapping):
            raise CrmseError(f"{owner} records 'model' as {model!r}, not a table; run the step again")
        return cls(
            run_id=run_id,
            n_train=int(compat.required_number(owner, config, "n_train")),
            architecture=str(compat.required(f"{owner}, model", model, "architecture")),
        )


SAMPLE_RECORDED = ("integrator", "temperature_K", "timestep_fs", "replicas", "steps")
"""Settings every sample run recorded since the first ``crmse sample`` (2026-11-24): required."""


@dataclass(frozen=True)
class SampleRecord:
    """A sample run, as its config records it.

    Attributes:
        run_id: the run.
        settings: its SampleConfig (:data:`SAMPLE_RECORDED` required; a setting the run predates
            takes its default, the behaviour before the setting existed).
        split: the split of the model's dataset it starts from.
    """

    run_id: str
    settings: SampleConfig
    split: str

    @classmethod
    def of(cls, run_id: str, config: Mapping[str, object]) -> SampleRecord:
        """The record of sample run ``run_id`` from its recorded ``config``."""
        owner = f"sample run {run_id}'s config"
        for key in SAMPLE_RECORDED:  # no default stands in for these (a run once profiled at 500 K)
            compat.required(owner, config, key)
        return cls(
            run_id=run_id,
            settings=_settings(SampleConfig, owner, config),
            split=str(compat.required(owner, config, "split")),
        )


__all__ = ["ModelRunRecord", "PretrainRecord", "RegularizeRecord", "SampleRecord"]
