"""What a samples file says about how its frames were drawn: its ``meta``, as one typed record.

Written by ``crmse sample`` (:mod:`crmse_cli.stages.sample`) into the samples artifact and the
artifact's registry row; read by ``evaluate`` and ``diagnose``, which profile the frames at the
temperature they were drawn at. Torch-free.

A samples file without ``temperature_K`` is refused, naming the file and the field: it was once
profiled at the 500 K default without a word.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from crmse_cli.errors import CrmseError


@dataclass(frozen=True)
class SampleMeta:
    """How the frames of a samples file were drawn.

    Attributes:
        temperature_K: the sampling temperature (K).
        integrator: the sampler's registered name (``sampling.kinds``).
        dataset: the dataset whose frames started the replicas.
        split: that dataset's split ("01", ...).
        checkpoint: the model file that was sampled.
        interrupted: the run was stopped (Ctrl-C) before its last step; the frames so far are kept.
    """

    temperature_K: float
    integrator: str | None = None
    dataset: str | None = None
    split: str | None = None
    checkpoint: str | None = None
    interrupted: bool = False

    def to_dict(self) -> dict[str, object]:
        """The JSON ``meta`` written into the file and the artifact row (None fields left out)."""
        out: dict[str, object] = {
            "integrator": self.integrator,
            "temperature_K": self.temperature_K,
            "dataset": self.dataset,
            "split": self.split,
            "checkpoint": self.checkpoint,
            "interrupted": self.interrupted,
        }
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_dict(cls, meta: Mapping[str, object], *, where: str) -> SampleMeta:
        """The record of a samples file's ``meta``; ``where`` names the file in errors.

        Raises:
            CrmseError: no ``temperature_K``, or a field of the wrong type (one line naming
                ``where`` and the field).
        """
        temperature = meta.get("temperature_K")
        if temperature is None:
            raise CrmseError(
                f"{where} has no 'temperature_K': it was written by a crmse that did not record it, "
                "or edited; sample again"
            )
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise CrmseError(
                f"{where} records 'temperature_K' as {temperature!r}, not a number; sample again"
            )
        return cls(
            temperature_K=float(temperature),
            integrator=_text(where, meta, "integrator"),
            dataset=_text(where, meta, "dataset"),
            split=_text(where, meta, "split"),
            checkpoint=_text(where, meta, "checkpoint"),
            interrupted=bool(meta.get("interrupted", False)),
        )


def _text(where: str, meta: Mapping[str, object], key: str) -> str | None:
    value = meta.get(key)
    if value is None or isinstance(value, str):
        return value
    raise CrmseError(f"{where} records {key!r} as {value!r}, not text; sample again")
