"""Gather what a comparison report shows from the registry and the artifacts (no torch here).

Each run the user names is resolved to a :class:`Target`: the samples it stands for, the model
behind them and the evaluation of those samples. :func:`collect` then reads the registry rows and
the ``evaluation`` npz of every target into plain dataclasses that the figures and the page draw,
so the report shows exactly the numbers that were stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from crmse_cli import __version__, names
from crmse_cli.errors import CrmseError, DataError
from crmse_cli.fileio import NPZ_READ_ERRORS
from crmse_cli.registry.run_records import ModelRunRecord, RegularizeRecord, SampleRecord
from crmse_cli.report.rows import Diagnosis, Failure, Value, run_failures
from crmse_cli.sampling.kinds import sampler_kind
from crmse_cli.train.budget import budget_summary

if TYPE_CHECKING:
    from crmse_cli.registry.store import Registry, RunInfo

SettingValue = str | float | None
"""A cell of the report's header table: text, a number, or None (not recorded)."""

MODEL_KINDS = ("pretrain", "regularize")
CURVE_NAMES = ("loss_mse", "loss_c", "chain_ks", "resets", "loss", "energy_chains", "energy_data")
"""Per-update metrics of regularize runs drawn as learning curves (names of stages/regularize.py)."""


@dataclass(frozen=True)
class Target:
    """One run the user named, resolved to its samples.

    Attributes:
        ref: what the user typed (id prefix or name).
        asked: the run it names.
        sample: the sample run whose frames are compared.
        model: the model run (pretrain/regularize) behind the samples; None for a bare checkpoint.
        evaluate: the evaluate run of the samples; None when they still need evaluating.
    """

    ref: str
    asked: RunInfo
    sample: RunInfo
    model: RunInfo | None
    evaluate: RunInfo | None


def _has_samples(reg: Registry, run: RunInfo) -> bool:
    return run.status == "completed" and bool(reg.artifacts(run.id, kind=names.ARTIFACT_SAMPLES))


def find_evaluation(reg: Registry, sample_id: str) -> RunInfo | None:
    """The latest completed evaluate run of sample run ``sample_id`` with an evaluation artifact."""
    done = [
        r
        for r in reg.children(sample_id, kind="evaluate")
        if r.status == "completed" and reg.artifacts(r.id, kind=names.ARTIFACT_EVALUATION)
    ]
    return done[-1] if done else None


def resolve_target(reg: Registry, ref: str) -> Target:
    """Resolve ``ref`` (a pretrain, regularize, sample or evaluate run) to its samples.

    Raises:
        NotFoundError: no such run.
        CrmseError: the run has no samples (with the command that makes them).
    """
    asked = reg.get_run(ref)
    evaluation = None
    if asked.kind == "evaluate":
        sid = asked.config.get("sample_run")
        if sid is None:
            parent = reg.get_run(asked.parent) if asked.parent else None
            sid = parent.id if parent is not None and parent.kind == "sample" else None
        if sid is None:
            raise CrmseError(
                f"run {asked.id} evaluates a model without samples; run `crmse sample RUN` and compare that"
            )
        sample = reg.get_run(sid)
        if asked.status == "completed" and reg.artifacts(asked.id, kind=names.ARTIFACT_EVALUATION):
            evaluation = asked
    elif asked.kind == "sample":
        sample = asked
    elif asked.kind in MODEL_KINDS:
        done = [r for r in reg.children(asked.id, kind="sample") if _has_samples(reg, r)]
        if not done:
            raise CrmseError(
                f"{asked.kind} run {asked.id} has no completed samples; run `crmse sample {ref}` first"
            )
        sample = done[-1]
    else:
        raise CrmseError(
            f"run {asked.id} is a {asked.kind} run; compare pretrain, regularize, sample or evaluate runs"
        )
    if not _has_samples(reg, sample):
        raise CrmseError(
            f"sample run {sample.id} ({sample.status}) has no samples; sample again with `crmse sample MODEL`"
        )
    model = None
    if sample.parent is not None:
        parent = reg.get_run(sample.parent)
        model = parent if parent.kind in MODEL_KINDS else None
    return Target(ref, asked, sample, model, evaluation or find_evaluation(reg, sample.id))


def check_same_dataset(targets: list[Target]) -> str:
    """The one dataset of all targets; a one-line error when they differ."""
    datasets = {t.sample.dataset for t in targets}
    if len(datasets) != 1:
        listed = ", ".join(f"{t.ref} ({t.sample.dataset})" for t in targets)
        raise CrmseError(f"runs are of different datasets: {listed}; compare runs of one molecule")
    return str(datasets.pop())


@dataclass(frozen=True)
class RunData:
    """Everything the report shows about one compared run.

    Attributes:
        label: unique legend label (run name or id).
        target: the resolved runs.
        evaluate: the evaluate run whose metrics and arrays are drawn.
        settings: header-table fields, in display order.
        model_metrics: final metrics of the model run (test energy/force errors).
        metrics: final metrics of the evaluate run.
        arrays: the evaluation npz (see analysis/metrics.py and stages/evaluate.py for names).
        curves: per-update metric name -> (steps (U,), values (U,)) for regularize models.
    """

    label: str
    target: Target
    evaluate: RunInfo
    settings: dict[str, SettingValue]
    model_metrics: dict[str, Value]
    metrics: dict[str, Value]
    arrays: dict[str, np.ndarray]
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def integrator(self) -> str:
        """The sampler of the run's samples: a registered name ("langevin", "ula", "mala"...).

        Every sample run records it (since the first `crmse sample`): a run without it is one
        error naming the run and the field, not langevin by default.
        """
        sample = self.target.sample
        return SampleRecord.of(sample.id, sample.config).settings.integrator

    @property
    def has_time(self) -> bool:
        """The run's sampler has physical time (else its survival times are steps)."""
        return sampler_kind(self.integrator).has_time


@dataclass(frozen=True)
class ReportData:
    """The whole report: title, dataset, the runs, the reference arrays and when it was made."""

    title: str
    dataset: str
    version: str
    created: str
    runs: list[RunData]
    diagnoses: list[Diagnosis] = field(default_factory=list)  # per diagnosed run
    failures: list[Failure] = field(default_factory=list)  # per replica that left
    reference_name: str = "DFT reference"  # what the reference frames are (see reference_names)
    reference_short: str = "DFT"  # the method that labelled them, as in "samples vs DFT"

    @property
    def reference(self) -> dict[str, np.ndarray]:
        """The reference arrays (those of the first run: same dataset, same reference frames)."""
        return self.runs[0].arrays


def reference_names(source: str | None, meta: Mapping[str, object] | None) -> tuple[str, str]:
    """What a dataset's reference frames are, from its provenance: (long name, labelling method).

    rMD17 and MD17 labels are DFT; a generated xTB set says its method and temperature, and a
    relabelled one says which surface sampled the frames and which labelled them.
    """
    meta = meta or {}
    if source == "xtb" or meta.get("source") == "xtb":
        sampled = str(meta.get("method", "xtb")).upper() + "-xTB"
        label = str(meta.get("label_method") or meta.get("method", "xtb")).upper() + "-xTB"
        temp = meta.get("temperature_K")
        at = f" at {float(temp):g} K" if isinstance(temp, int | float | str) else ""
        if label != sampled:
            return f"{sampled} frames{at}, {label} labels", label
        return f"{sampled} reference{at}", label
    if source in ("xyz",):
        return "reference", "reference"
    return "DFT reference", "DFT"


def _settings(t: Target, ev: RunInfo) -> dict[str, SettingValue]:
    s = SampleRecord.of(t.sample.id, t.sample.config)
    model = ModelRunRecord.of(t.model.id, t.model.kind, t.model.config) if t.model is not None else None
    reg = (
        RegularizeRecord.of(t.model.id, t.model.config)
        if t.model is not None and t.model.kind == "regularize"
        else None
    )
    c = reg.contrastive if reg is not None else None
    return {
        "run": t.asked.name or t.asked.id,
        "id": t.asked.id,
        "kind": t.asked.kind,
        "model run": f"{t.model.id} ({t.model.kind})" if t.model is not None else "checkpoint file",
        "sample run": t.sample.id,
        "evaluate run": ev.id,
        "dataset": t.sample.dataset,
        "split": s.split,
        "architecture": model.architecture if model is not None else None,
        "n_train": model.n_train if model is not None else None,
        "lambda": reg.lambda_.value if reg is not None else None,
        "eta (Å²)": c.eta_A2 if c is not None else None,
        "K steps per update": c.steps_per_update if c is not None else None,
        "chains": c.n_chains if c is not None else None,
        "updates": c.n_updates if c is not None else None,
        "integrator": s.settings.integrator,
        "temperature (K)": s.settings.temperature_K,
        "replicas": s.settings.replicas,
        "steps": s.settings.steps,
        "timestep (fs)": s.settings.timestep_fs if sampler_kind(s.settings.integrator).has_time else None,
        "version": t.model.version if t.model is not None else t.sample.version,
    }


def _budget(t: Target, model_metrics: dict[str, Value]) -> str | None:
    """The force budget's choice of a regularize model run (``crmse show``'s line), else None."""
    if t.model is None or t.model.kind != "regularize":
        return None
    return budget_summary(t.model.config, {k: v[0] for k, v in model_metrics.items()})


def load_evaluation(reg: Registry, evaluate_id: str) -> dict[str, np.ndarray]:
    """The arrays of the latest ``evaluation`` artifact of an evaluate run."""
    arts = reg.artifacts(evaluate_id, kind=names.ARTIFACT_EVALUATION)
    if not arts:
        raise CrmseError(f"evaluate run {evaluate_id} has no evaluation artifact; evaluate the samples again")
    path = Path(arts[-1].path)
    if not path.is_file():
        raise DataError(f"evaluation file {path} of run {evaluate_id} is missing; evaluate the samples again")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except NPZ_READ_ERRORS as exc:
        raise DataError(
            f"evaluation file {path} of run {evaluate_id} is unreadable ({type(exc).__name__}); "
            "evaluate the samples again"
        ) from exc


def _curves(reg: Registry, model: RunInfo | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if model is None or model.kind != "regularize":
        return {}
    out = {}
    for name in CURVE_NAMES:
        rows = [m for m in reg.metrics(model.id, name=name) if m.step is not None]
        if rows:
            out[name] = (np.array([m.step for m in rows]), np.array([m.value for m in rows]))
    return out


def _labels(targets: list[Target]) -> list[str]:
    labels: list[str] = []
    for t in targets:
        label = t.asked.name or t.asked.id
        if label in labels:
            label = f"{label} [{t.sample.id}]"
        labels.append(label)
    return labels


def collect(reg: Registry, targets: list[Target], *, title: str | None = None) -> ReportData:
    """Read registry rows and evaluation artifacts of evaluated ``targets`` into a :class:`ReportData`."""
    if not targets:
        raise CrmseError("name at least one run to compare")
    dataset = check_same_dataset(targets)
    runs = []
    for label, t in zip(_labels(targets), targets, strict=True):
        if t.evaluate is None:
            raise CrmseError(
                f"sample run {t.sample.id} has no evaluation; run `crmse evaluate {t.sample.id}`"
            )
        metrics = {k: (m.value, m.unit) for k, m in reg.final_metrics(t.evaluate.id).items()}
        model_metrics = (
            {k: (m.value, m.unit) for k, m in reg.final_metrics(t.model.id).items()} if t.model else {}
        )
        runs.append(
            RunData(
                label=label,
                target=t,
                evaluate=t.evaluate,
                settings={**_settings(t, t.evaluate), "force budget": _budget(t, model_metrics)},
                model_metrics=model_metrics,
                metrics=metrics,
                arrays=load_evaluation(reg, t.evaluate.id),
                curves=_curves(reg, t.model),
            )
        )
    labels = ", ".join(r.label for r in runs)
    info = reg.find_dataset(dataset)
    ref_name, ref_short = (
        reference_names(info.source, info.meta) if info is not None else ("reference", "reference")
    )
    report = ReportData(
        title=title or f"{dataset}: {labels}",
        dataset=dataset,
        version=__version__,
        created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        runs=runs,
        reference_name=ref_name,
        reference_short=ref_short,
    )
    return replace(report, diagnoses=find_diagnoses(reg, report), failures=find_failures(reg, report))


def find_failures(reg: Registry, report: ReportData) -> list[Failure]:
    """Every compared run's failed replicas, read from its samples file (missing files: none)."""
    out: list[Failure] = []
    for r in report.runs:
        arts = reg.artifacts(r.target.sample.id, kind=names.ARTIFACT_SAMPLES)
        if arts and Path(arts[-1].path).is_file():
            out += run_failures(r.label, Path(arts[-1].path))
    return out


def find_diagnoses(reg: Registry, report: ReportData) -> list[Diagnosis]:
    """The latest completed diagnose run of each compared model (runs without one are skipped)."""
    out: list[Diagnosis] = []
    for r in report.runs:
        model = r.target.model
        if model is None:
            continue
        done = [d for d in reg.children(model.id, kind="diagnose") if d.status == "completed"]
        if not done:
            continue
        d = done[-1]
        arrays: dict[str, np.ndarray] = {}
        arts = reg.artifacts(d.id, kind="diagnosis")
        if arts and Path(arts[-1].path).is_file():
            with np.load(arts[-1].path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        metrics = {k: (m.value, m.unit) for k, m in reg.final_metrics(d.id).items()}
        out.append(Diagnosis(r.label, d, metrics, arrays))
    return out
