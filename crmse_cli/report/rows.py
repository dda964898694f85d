"""The rows of the report's tables: metrics, failed replicas and diagnoses.

:func:`metric_table` gives the metrics table's rows (runs as columns, the reference beside them);
:class:`Failure` (one replica that left the basin, read from a samples file) feeds the failures
table of :mod:`crmse_cli.report.lead`; :class:`Diagnosis` (a compared model's latest diagnose
run) feeds the instruments section of :mod:`crmse_cli.report.instruments`.
:func:`crmse_cli.report.collect.collect` finds both when it gathers the report. Their own module,
so that the gathering and the drawing both import them and not each other. No torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ase.data import chemical_symbols

from crmse_cli import names
from crmse_cli.fileio import NPZ_READ_ERRORS

if TYPE_CHECKING:
    from crmse_cli.registry.entities import RunInfo
    from crmse_cli.report.collect import ReportData, RunData

Value = tuple[float, str]
"""(value, unit)."""


@dataclass(frozen=True)
class Failure:
    """One replica that left the physical basin.

    Attributes:
        label: the compared run's label.
        replica: replica index in the samples file.
        time_ps: when the monitor first saw it outside, ps (NaN without physical time: ULA).
        step: that sampler step.
        reason: "collapse", "bond" or "nonfinite".
        frame: index of the last recorded frame at or before ``step`` (``positions[frame, replica]``).
        pair: the closest pair of that frame, e.g. ``H4-H7``.
        distance_A: its distance, Å.
        samples: the samples file.
    """

    label: str
    replica: int
    time_ps: float
    step: int
    reason: str
    frame: int
    pair: str
    distance_A: float
    samples: str


def _closest_pair(species: np.ndarray, x: np.ndarray) -> tuple[str, float]:
    d = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)
    d[np.diag_indices(len(x))] = np.inf
    a, b = np.unravel_index(int(np.nanargmin(d)), d.shape)
    i, j = sorted((int(a), int(b)))
    sym = [chemical_symbols[int(z)] for z in species]
    return f"{sym[i]}{i}-{sym[j]}{j}", float(d[i, j])


def run_failures(label: str, path: Path) -> list[Failure]:
    """The replicas of one samples file that left the basin, first to leave first."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "stability_left" not in z.files:
                return []
            left = np.flatnonzero(z["stability_left"])
            first = z["stability_first_step"]
            time_fs, reason, steps = z["stability_time_fs"], z["stability_reason"], z["steps"]
            positions, species = z["positions"], z["species"]
    except NPZ_READ_ERRORS:  # OSError among them
        return []
    out = []
    for r in left:
        frame = max(int(np.searchsorted(steps, first[r], side="right")) - 1, 0)
        x = np.asarray(positions[frame, r], dtype=np.float64)
        pair, dist = _closest_pair(species, x) if np.isfinite(x).all() else ("-", math.nan)
        t = float(time_fs[r]) / 1000.0
        out.append(Failure(label, int(r), t, int(first[r]), str(reason[r]), frame, pair, dist, str(path)))
    return sorted(out, key=lambda f: (f.step, f.replica))


@dataclass(frozen=True)
class Diagnosis:
    """One compared run's latest diagnose run: label, the run, its metrics and its npz arrays."""

    label: str
    run: RunInfo
    metrics: dict[str, Value]
    arrays: dict[str, np.ndarray]


@dataclass(frozen=True)
class MetricRow:
    """One row of the metrics table: a value per run and, where it has one, the reference's."""

    key: str
    label: str
    unit: str
    reference: float | None
    values: list[float | None]


def _value(run: RunData, key: str) -> Value | None:
    if key.startswith("test_"):  # accuracy: the model run's own final metrics first
        return run.model_metrics.get(key) or run.metrics.get(key)
    return run.metrics.get(key)


def metric_table(report: ReportData) -> list[MetricRow]:
    """The rows of the metrics table (absent metrics are None; rows absent everywhere are dropped)."""
    torsions = sorted(
        {
            k.split(".", 1)[1]
            for r in report.runs
            for k in r.metrics
            if k.startswith(names.DIHEDRAL_PROFILE_ERROR + ".")
        }
    )
    ref_of = {
        names.CONFIG_TEMPERATURE_SAMPLE_K: reference_tconf(report),
        "min_pair_distance_sample": _first(report, "min_pair_distance_ref"),
        "n_sample_frames": _first(report, "n_ref_frames"),
        # The reference against itself: its first half of frames against its second (the floor).
        **{
            names.dihedral_profile_error(n): _first(report, names.dihedral_profile_floor(n))
            for n in torsions
        },
    }
    spec: list[str] = [
        names.TEST_ENERGY_MAE,
        names.TEST_FORCE_MAE,
        names.ENERGY_KS,
        "energy_mean_sample_minus_ref",
        names.HR_MAE,
        *[names.dihedral_profile_error(n) for n in torsions],
        *[f"{names.DIHEDRAL_JS}.{n}" for n in torsions],
        "pair_hist_mae_mean",
        names.SHARE_OUTSIDE_SUPPORT,
        "min_pair_distance_sample",
        names.STABLE_FRACTION,
        names.MEDIAN_LEAVE_TIME_PS,
        "median_leave_steps",
        names.CONFIG_TEMPERATURE_SAMPLE_K,
        names.CONFIG_TEMPERATURE_REF_K,
        "virial_temperature_sample_K",
        "virial_temperature_sample_K_err",
        "virial_temperature_ref_K",
        "virial_temperature_ref_K_err",
        "sampling_temperature_K",
        "n_sample_frames",
    ]
    rows = []
    for key in spec:
        vals = [_value(r, key) for r in report.runs]
        ref = ref_of.get(key)
        if all(v is None for v in vals) and ref is None:
            continue
        unit = next((v[1] for v in vals if v is not None), "K" if key.endswith("_K") else "1")
        label = names.metric_title(key, ref=report.reference_short, unit=False)
        rows.append(MetricRow(key, label, unit, ref, [None if v is None else float(v[0]) for v in vals]))
    return rows


def _first(report: ReportData, key: str) -> float | None:
    return next((float(r.metrics[key][0]) for r in report.runs if key in r.metrics), None)


def reference_tconf(report: ReportData) -> float | None:
    """Configurational temperature of the reference frames, K (mean over the runs' estimates)."""
    vals = [
        r.metrics[names.CONFIG_TEMPERATURE_REF_K][0]
        for r in report.runs
        if names.CONFIG_TEMPERATURE_REF_K in r.metrics
    ]
    return float(np.mean(vals)) if vals else None
