"""`crmse sample`: a registered sampler (Langevin BAOAB, ULA, MALA...) and a stability monitor.

Replicas start from held-out frames of the model's split (the test frames by default, drawn with
the seed) with Maxwell-Boltzmann velocities and zero centre-of-mass momentum. Frames are recorded
every ``record_every`` steps; the stability monitor (bond deviation > 0.5 Å from the reference
mean, or any pair closer than its DFT minimum - 0.3 Å) is checked every ``check_every`` steps and
never stops the other replicas. The reference for the monitor is the DFT reference set: frames in
neither the training nor the test part of the split.

With ``processes`` > 1 the replicas are sharded over worker processes of one thread each
(:mod:`crmse_cli.stages.sample_shards`); the run, its artifacts and its rows are the same.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from crmse_cli import names
from crmse_cli.data.dataset import Dataset
from crmse_cli.errors import CrmseError
from crmse_cli.fileio import sha256_file
from crmse_cli.metric import Metric, finite, metric_rows
from crmse_cli.progress import make_progress
from crmse_cli.registry.store import Registry
from crmse_cli.sampling.kinds import build_sampler, sampler_kind
from crmse_cli.sampling.monitor import StabilityMonitor
from crmse_cli.sampling.observers import SamplerState
from crmse_cli.sampling.sample_config import Report, SampleConfig, report_interval
from crmse_cli.sampling.sample_meta import SampleMeta
from crmse_cli.sampling.trajectory import TrajectoryRecorder, export_extxyz, merge_trajectories
from crmse_cli.stages._models import ModelHandle, check_species, load_dataset, resolve_model, sampler_forces
from crmse_cli.stages._run import NewRun, RunContext
from crmse_cli.stages.sample_shards import remove_shards, sample_in_processes
from crmse_cli.workspace import Workspace


@dataclass(frozen=True)
class SampleResult:
    """The outcome of one sample run: its id, the samples npz and final metrics name -> (value, unit)."""

    run_id: str
    samples_path: Path
    metrics: dict[str, tuple[float, str]]
    interrupted: bool
    wall_s: float


def _start_frames(data: Dataset, split: str, where: str, n: int, gen: torch.Generator) -> np.ndarray:
    train, test = data.split(split)
    pool = {"test": test, "train": train, "reference": data.reference_indices(split)}[where]
    if len(pool) == 0:
        raise CrmseError(f"dataset {data.name!r} split {split} has no {where} frames to start from")
    pick = (
        torch.randint(0, len(pool), (n,), generator=gen).numpy()
        if n > len(pool)
        else (torch.randperm(len(pool), generator=gen)[:n].numpy())
    )
    return data.positions[pool[pick]]


def stability_metrics(monitor: StabilityMonitor, has_time: bool) -> dict[str, tuple[float, str]]:
    """Registry rows of the stability summary (times in ps for a sampler with time, else steps)."""
    s = monitor.summary()
    out: dict[str, tuple[float, str]] = {
        names.STABLE_FRACTION: (float(s.fraction_stable), "1"),
        "n_left": (float(s.n_left), "1"),
        "n_replicas": (float(s.n_replicas), "1"),
    }
    for reason, count in s.reasons.items():
        out[f"n_left_{reason}"] = (float(count), "1")
    if has_time:
        out[names.MEDIAN_LEAVE_TIME_PS] = (s.median_time_left_fs / 1000.0, "ps")
        out["median_survival_ps"] = (s.median_survival_fs / 1000.0, "ps")
        out["simulated_ps"] = (s.observed_time_fs / 1000.0, "ps")
    else:
        out["median_leave_steps"] = (s.median_steps_left, "steps")
        out["simulated_steps"] = (float(s.observed_steps), "steps")
    return out


@dataclass(frozen=True)
class SampleSpec:
    """A planned sample run (built without writing).

    Attributes:
        config: the settings.
        handle: the model sampled.
        data: its dataset (start frames, the monitor's reference).
        new_run: the row the run records.
    """

    config: SampleConfig
    handle: ModelHandle
    data: Dataset
    new_run: NewRun


def sample(
    ws: Workspace,
    model: str,
    config: SampleConfig,
    *,
    name: str | None = None,
    registry: Registry | None = None,
) -> SampleResult:
    """Sample model ``model`` (run id/name or checkpoint path); register a ``sample`` run."""
    reg = registry or Registry.open(ws.ensure())
    spec = plan(ws, reg, model, config, name=name)
    return execute(RunContext.create(ws, reg, spec.new_run), spec)


def plan(
    ws: Workspace, reg: Registry, model: str, config: SampleConfig, *, name: str | None = None
) -> SampleSpec:
    """Load the model and its dataset and decide the run's row (every refusal before it exists)."""
    handle = resolve_model(reg, model, device=config.device, dtype=config.dtype, trust_code=ws.trust_code)
    data = load_dataset(reg, handle.dataset)
    check_species(handle, data)
    run_config = {
        "dataset": handle.dataset,
        "split": handle.split,
        "model_run": handle.run.id if handle.run else None,
        "checkpoint": str(handle.checkpoint),
        "checkpoint_sha256": sha256_file(handle.checkpoint),
        **asdict(config),
    }
    new_run = NewRun(
        kind="sample",
        name=name,
        dataset=handle.dataset,
        parent=handle.run.id if handle.run else None,
        config=run_config,
        seed=config.seed,
    )
    return SampleSpec(config=config, handle=handle, data=data, new_run=new_run)


def execute(ctx: RunContext, spec: SampleSpec) -> SampleResult:
    """Sample as ``spec`` plans it into run ``ctx``, and close the run."""
    with ctx:
        return _sample_run(ctx, spec.handle, spec.data, spec.config)


def _sample_run(ctx: RunContext, handle: ModelHandle, data: Dataset, cfg: SampleConfig) -> SampleResult:
    t0 = time.perf_counter()
    ws, run_id = ctx.ws, ctx.run_id
    has_time = sampler_kind(cfg.integrator).has_time
    cpu_gen = torch.Generator().manual_seed(cfg.seed)
    start = _start_frames(data, handle.split, cfg.start, cfg.replicas, cpu_gen)
    ref = data.positions[data.reference_indices(handle.split)]
    monitor = StabilityMonitor.from_reference(data.species, ref)
    (ctx.run_dir / "artifacts").mkdir(parents=True, exist_ok=True)
    meta = SampleMeta(
        integrator=cfg.integrator,
        temperature_K=cfg.temperature_K,
        dataset=data.name,
        split=handle.split,
        checkpoint=str(handle.checkpoint),
    )
    rows: list[Metric] = []
    with make_progress() as bar:
        task = bar.add_task(f"sample {cfg.integrator}", total=cfg.steps, info="")

        def report(step: int, time_fs: float, n_left: int, temp: float) -> None:
            rows.append(Metric(name="n_broken", value=float(n_left), unit="1", step=step))
            info = f"broken {n_left}/{cfg.replicas}"
            if has_time:
                rows.append(Metric(name="temperature_kinetic", value=temp, unit="K", step=step))
                info = f"{time_fs / 1000:.2f} ps  T {temp:.0f} K  " + info
            bar.update(task, completed=step, info=info)

        sampled = _sample_sharded if cfg.processes > 1 else _sample_here
        path, n_frames, meta = sampled(ws, run_id, handle, data, cfg, start, monitor, report, meta)
    ctx.add_artifact(names.ARTIFACT_SAMPLES, path, meta=meta.to_dict())
    # The extended-XYZ copy is for eyes and ASE tools: at most ~50 frames per replica.
    stride = max(1, n_frames // 50)
    xyz = ctx.artifact_path("samples.extxyz")
    export_extxyz(path, xyz, stride=stride)
    ctx.add_artifact(names.ARTIFACT_EXTXYZ, xyz, meta={"stride": stride})
    metrics = stability_metrics(monitor, has_time)
    rows += metric_rows(metrics)
    ctx.log_metrics(finite(rows))  # NaN: undefined, not stored
    if meta.interrupted:
        ctx.registry.set_status(
            run_id, "interrupted", error="interrupted by the user (Ctrl-C); samples so far were kept"
        )
        raise KeyboardInterrupt
    return SampleResult(run_id, path, metrics, False, time.perf_counter() - t0)


def _sample_here(
    ws: Workspace,
    run_id: str,
    handle: ModelHandle,
    data: Dataset,
    cfg: SampleConfig,
    start: np.ndarray,
    monitor: StabilityMonitor,
    report: Report,
    meta: SampleMeta,
) -> tuple[Path, int, SampleMeta]:
    """All replicas in this process as one batch; returns (samples file, frames recorded, its meta)."""
    device, dtype = handle.device, handle.potential.dtype
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    species = torch.as_tensor(data.species, device=device)
    recorder = TrajectoryRecorder(data.species, monitor=monitor)
    force_fn = sampler_forces(ws, handle.potential, species)
    sampler = build_sampler(
        cfg.integrator, force_fn, cfg.sampler_settings, generator=gen, species=data.species, dtype=dtype
    )
    state = sampler.init_state(torch.as_tensor(start, dtype=dtype, device=device))
    sampler.attach(lambda s: monitor.update(s.positions, s.step, s.time_fs), every=cfg.check_every)
    sampler.attach(recorder, every=cfg.record_every)

    def observe(s: SamplerState) -> None:
        n_left = int(monitor.left.sum()) if monitor.n_replicas else 0
        temp = float(sampler.kinetic_temperature(s).mean())  # NaN without velocities
        report(int(s.step), float(s.time_fs), n_left, temp)

    sampler.attach(observe, every=report_interval(cfg))
    sampler.run(state, cfg.steps)
    meta = replace(meta, interrupted=sampler.interrupted)
    path = recorder.save(ws.run_dir(run_id) / "artifacts" / "samples.npz", meta=meta.to_dict())
    return path, recorder.n_frames, meta


def _sample_sharded(
    ws: Workspace,
    run_id: str,
    handle: ModelHandle,
    data: Dataset,
    cfg: SampleConfig,
    start: np.ndarray,
    monitor: StabilityMonitor,
    report: Report,
    meta: SampleMeta,
) -> tuple[Path, int, SampleMeta]:
    """The replicas over ``cfg.processes`` workers, their shards merged into one samples file."""
    folder = ws.run_dir(run_id) / "shards"
    try:
        shards = sample_in_processes(
            handle.checkpoint,
            cfg,
            start,
            data.species,
            monitor,
            folder,
            report,
            trust_code=handle.trusted,
            compile_cache=ws.compile_cache_dir if ws.compile_forces else None,
        )
        out = ws.run_dir(run_id) / "artifacts" / "samples.npz"
        path = merge_trajectories(shards, out, monitor=monitor, meta=meta.to_dict())
    finally:
        remove_shards(folder)
    return path, len(range(0, cfg.steps + 1, cfg.record_every)), meta
