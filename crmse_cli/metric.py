"""One metric value: what a stage logs and what the registry gives back (a frozen record).

Torch- and database-free, so every layer that produces metric rows (the trainers, the stages)
builds the same record the registry stores and returns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Metric:
    """One logged metric value.

    Attributes:
        name: metric name (docs/architecture.md lists them).
        value: the value in ``unit`` (the registry stores finite values only).
        unit: unit string (``kcal/mol``, ``kcal/mol/A``, ``meV``, ``K``, ``1``, ...).
        split: ``train``, ``val``, ``test`` or None.
        step: epoch, update or sampler step; None for a final value.
        time: when it was logged (UTC); None until the registry stores it.
    """

    name: str
    value: float
    unit: str = "1"
    split: str | None = None
    step: int | None = None
    time: datetime | None = None


def metric_rows(
    values: Mapping[str, tuple[float, str]], *, split: str | None = None, step: int | None = None
) -> list[Metric]:
    """Records of ``values`` (name -> (value, unit)), all of one split and step."""
    return [Metric(name=k, value=float(v), unit=u, split=split, step=step) for k, (v, u) in values.items()]


def finite(rows: Iterable[Metric]) -> list[Metric]:
    """The rows with a finite value (NaN: undefined, e.g. a kinetic temperature without velocities)."""
    return [r for r in rows if math.isfinite(r.value)]


__all__ = ["Metric", "finite", "metric_rows"]
