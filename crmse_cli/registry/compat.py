"""Runs written by older crmse, read as today's code reads them: every fix-up in one place.

A run's recorded config, metrics and sample meta are read through this module wherever a key may
be absent from older runs. Each fix-up is dated and says what the code of that time did, so an
old run reads as it ran; a key that no fix-up explains is an error naming the run and the key,
never a silent default (a samples file without its temperature was once profiled at 500 K).
Torch-free and free of the stages: it works on the recorded JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from crmse_cli.config import JsonDict
from crmse_cli.defaults import ENERGY_WEIGHT, FORCE_WEIGHT
from crmse_cli.errors import CrmseError

SAMPLING_TEMPERATURE_K = "sampling_temperature_K"
"""The evaluate run's metric that records the temperature its samples were drawn at (K)."""


def required(owner: str, data: Mapping[str, object], key: str) -> object:
    """``data[key]``, or a one-line error naming ``owner`` (e.g. ``run 1a2b3c4d's config``) and the key."""
    value = data.get(key)
    if value is None:
        raise CrmseError(
            f"{owner} has no {key!r}: it was written by a crmse that did not record it, or edited; "
            "run the step again"
        )
    return value


def required_number(owner: str, data: Mapping[str, object], key: str) -> float:
    """``data[key]`` as a float: an error naming ``owner`` and the key when absent or not a number."""
    value = required(owner, data, key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CrmseError(f"{owner} records {key!r} as {value!r}, not a number; run the step again")
    return float(value)


def _table(config: Mapping[str, object], key: str) -> JsonDict:
    """The sub-table ``key`` of a recorded config ({} when the run predates it)."""
    value = config.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CrmseError(f"a run's config records {key!r} as {value!r}, not a table; run the step again")
    return dict(value)


def regularize_contrastive(config: Mapping[str, object]) -> JsonDict:
    """The ``contrastive`` settings of a regularize run's config, as today's ContrastiveConfig reads them.

    Settings a run predates are absent and take ContrastiveConfig's defaults, each of which is the
    behaviour the run had before the setting existed, except these, whose default changed:

    - ``grad_clip``: runs before 2026-12-02 stored None for "off" (today 0.0).
    - ``lambda_units``: runs before 2026-12-02 weighed lambda against the kcal/mol loss ("kcal";
      today's default is "eV"). Read from the run's top level first, where it was also recorded.
    - ``init``: before 2026-12-02 CRMSE started from the pretrain run's EMA weights ("ema"; today
      "raw").
    - ``ema_decay``: runs before 2026-12-07 averaged no weights (0.0, also today's default; read
      by ``--init raw``, which takes such a run's raw weights from its model).
    """
    c = _table(config, "contrastive")
    if c.get("grad_clip") is None:
        c["grad_clip"] = 0.0
    c.setdefault("lambda_units", config.get("lambda_units") or "kcal")
    c.setdefault("init", "ema")
    c.setdefault("ema_decay", 0.0)
    return c


def trained_loss_weights(settings: Mapping[str, object]) -> tuple[float, float]:
    """(w_E, w_F) of L_MSE a model trained with, from its recorded settings.

    ``settings``: a pretrain run's PretrainConfig as its checkpoint records it, or a regularize
    run's ``contrastive`` table (:func:`regularize_contrastive`). A model that records none (an
    imported MACE model has no pretrain config; a regularize run that left them unset) trained with
    pretraining's defaults, :data:`~crmse_cli.defaults.ENERGY_WEIGHT` and ``FORCE_WEIGHT``.
    """
    w_e, w_f = settings.get("energy_weight"), settings.get("force_weight")
    return (
        ENERGY_WEIGHT
        if w_e is None
        else required_number("the source model's settings", settings, "energy_weight"),
        FORCE_WEIGHT
        if w_f is None
        else required_number("the source model's settings", settings, "force_weight"),
    )


def regularize_budget(config: Mapping[str, object]) -> JsonDict:
    """The ``budget`` settings of a regularize run's config (runs before the force budget: none, off)."""
    return _table(config, "budget")


@dataclass(frozen=True)
class LambdaSetting:
    """A regularize run's lambda: as given, its convention, and its weight against the kcal loss.

    Attributes:
        value: lambda as the user gave it, in the convention ``units``.
        units: "eV" (L_MSE read in eV, eV/Å) or "kcal" (in kcal/mol, kcal/mol/Å).
        internal: the weight of L_C against L_MSE computed in kcal/mol and kcal/mol/Å.
    """

    value: float
    units: str
    internal: float


def lambda_setting(run_id: str, config: Mapping[str, object]) -> LambdaSetting:
    """The lambda of regularize run ``run_id`` from its recorded ``config``: the one reader of it."""
    owner = f"regularize run {run_id}'s config"
    value = required_number(owner, config, "lambda")
    units = str(regularize_contrastive(config)["lambda_units"])
    if "lambda_internal" in config:
        internal = required_number(owner, config, "lambda_internal")
    elif units == "kcal":  # runs before 2026-12-02 recorded no internal weight: it was lambda itself
        internal = value
    else:
        internal = required_number(owner, config, "lambda_internal")
    return LambdaSetting(value=value, units=units, internal=internal)


def evaluated_temperature_K(run_id: str, metrics: Mapping[str, tuple[float, str]]) -> float:
    """The sampling temperature (K) an evaluate run profiled its samples at (its final metrics)."""
    required(f"evaluate run {run_id}'s metrics", metrics, SAMPLING_TEMPERATURE_K)
    return float(metrics[SAMPLING_TEMPERATURE_K][0])


__all__ = [
    "SAMPLING_TEMPERATURE_K",
    "LambdaSetting",
    "evaluated_temperature_K",
    "lambda_setting",
    "regularize_budget",
    "regularize_contrastive",
    "required",
    "required_number",
    "trained_loss_weights",
]
