"""`crmse evaluate`: accuracy on the test frames and distribution metrics against DFT.

For a model run (pretrain / regularize): energy and force MAE / RMSE on the split's test frames.
For a sample run: that, for the model behind it, plus every distribution metric of METHOD.md
between the sampled frames and the DFT reference frames (frames in neither the training nor the
test part of the split), the configurational temperature of both frame sets, and the replica
survival curve. Everything is stored as metrics of an ``evaluate`` run whose parent is the
evaluated run, and the arrays behind the figures as an ``evaluation`` npz artifact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from crmse_cli import names
from crmse_cli.analysis.metrics import distribution_metrics
from crmse_cli.analysis.observables import finite_frames, min_pair_distance_per_frame
from crmse_cli.analysis.stats import configurational_temperature, virial_temperature_error
from crmse_cli.data.dataset import Dataset
from crmse_cli.errors import CrmseError, NotFoundError
from crmse_cli.fileio import atomic_path
from crmse_cli.metric import finite, metric_rows
from crmse_cli.model.forces import energy_and_forces, laplacian
from crmse_cli.progress import make_progress
from crmse_cli.registry import compat
from crmse_cli.registry.store import Registry, RunInfo
from crmse_cli.sampling.sample_meta import SampleMeta
from crmse_cli.sampling.trajectory import Trajectory, load_trajectory
from crmse_cli.stages._models import ModelHandle, check_species, load_dataset, resolve_model, verify_artifact
from crmse_cli.stages._run import NewRun, RunContext
from crmse_cli.train.accuracy import test_metrics
from crmse_cli.validate import check_option
from crmse_cli.workspace import Workspace

BURN_IN_FRACTION = 0.1
"""Share of each trajectory's recorded frames dropped as equilibration before the metrics."""
MAX_SAMPLE_FRAMES = 50_000
TCONF_FRAMES = 200
"""Frames per set for the configurational temperature (3N backward passes per batch)."""
VIRIAL_FRAMES = 4000
"""Most sampled frames whose model forces enter the virial temperature (one force call each)."""
VIRIAL_BLOCKS = 100
"""Bootstrap blocks of the virial temperature's error bar (contiguous frames per block)."""


@dataclass(frozen=True)
class EvaluateResult:
    """The outcome of one evaluate run.

    Its id, final metrics name -> (value, unit), and the npz of arrays the report draws (None
    for a model run, which has no samples).
    """

    run_id: str
    metrics: dict[str, tuple[float, str]]
    evaluation_path: Path | None


def _tconf(
    handle: ModelHandle, species: np.ndarray, positions: np.ndarray, forces: np.ndarray | None
) -> float:
    """T_conf of a frame set; forces None means the model's own (samples)."""
    sp = torch.as_tensor(species, device=handle.device)
    pos = torch.as_tensor(positions, dtype=handle.potential.dtype, device=handle.device)
    lap = np.concatenate([laplacian(handle.potential, p, sp).double().cpu().numpy() for p in pos.split(50)])
    if forces is None:
        forces = np.concatenate(
            [energy_and_forces(handle.potential, p, sp)[1].double().cpu().numpy() for p in pos.split(100)]
        )
    return configurational_temperature(forces, lap)


def virial_metrics(
    handle: ModelHandle | None,
    species: np.ndarray,
    positions: np.ndarray,
    forces: np.ndarray | None,
    tag: str,
    *,
    seed: int = 0,
) -> dict[str, tuple[float, str]]:
    """``virial_temperature_<tag>_K`` and its block-bootstrap ``_err``, beside T_conf.

    Args:
        handle: the model whose forces label the frames when ``forces`` is None (samples).
        species: (N,) atomic numbers.
        positions: (F, N, 3) Å, ordered so that correlated frames are contiguous (one replica's
            frames together; rMD17 rows are in random trajectory order).
        forces: (F, N, 3) kcal/mol/Å (the DFT forces of reference frames), or None.
        tag: ``ref`` or ``sample``.
        seed: seed of the bootstrap.
    """
    if forces is None:
        assert handle is not None
        sp = torch.as_tensor(species, device=handle.device)
        pos_t = torch.as_tensor(positions, dtype=handle.potential.dtype, device=handle.device)
        forces = np.concatenate(
            [energy_and_forces(handle.potential, p, sp)[1].double().cpu().numpy() for p in pos_t.split(200)]
        )
    block = max(1, len(positions) // VIRIAL_BLOCKS)
    if len(positions) // block < 2:
        return {}
    t, err = virial_temperature_error(positions, forces, block_size=block, n_boot=500, seed=seed)
    return {f"virial_temperature_{tag}_K": (t, "K"), f"virial_temperature_{tag}_K_err": (err, "K")}


def _virial_sample_frames(traj: Trajectory, first: int) -> np.ndarray:
    """Sampled frames (F, N, 3) for the virial temperature: replica by replica, strided in time."""
    pos = traj.positions[first:]  # (T, R, N, 3)
    stride = max(1, math.ceil(pos.shape[0] * pos.shape[1] / VIRIAL_FRAMES))
    per_replica = np.swapaxes(pos[::stride], 0, 1).astype(np.float64)  # (R, T', N, 3)
    flat = per_replica.reshape(-1, *pos.shape[2:])
    out: np.ndarray = flat[np.isfinite(flat).all(axis=(1, 2))]
    return out


def survival_curve(stability: dict[str, np.ndarray], time_axis: np.ndarray) -> np.ndarray:
    """Fraction of replicas still in the physical basin at each time of ``time_axis``."""
    left_at = stability.get("stability_time_fs")
    if left_at is None or left_at.size == 0:
        return np.ones_like(time_axis)
    left_at = np.where(np.isnan(left_at), np.inf, left_at)
    return (left_at[None, :] > time_axis[:, None]).mean(axis=1)


def closest_hh(species: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(F,) Å: the closest H-H distance of each frame (empty with fewer than two H).

    Collapsed geminal hydrogens are the signature of the spurious minima of MSE-trained models
    (METHOD.md), so the report draws this distribution beside the per-pair histograms.
    """
    h = np.flatnonzero(np.asarray(species) == 1)
    if len(h) < 2 or len(positions) == 0:
        return np.zeros(0)
    pairs = np.array([(a, b) for i, a in enumerate(h) for b in h[i + 1 :]], dtype=np.int64)
    return min_pair_distance_per_frame(positions, pairs)


def _pick(n: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=k, replace=False)) if n > k else np.arange(n)


def distribution_part(
    handle: ModelHandle,
    data: Dataset,
    samples_path: Path,
    *,
    burn_in_fraction: float = BURN_IN_FRACTION,
    seed: int = 0,
    samples_of: str = "the samples file",
) -> tuple[dict[str, tuple[float, str]], dict[str, np.ndarray]]:
    """Every distribution metric of a sample artifact against the DFT reference frames.

    ``samples_of`` names the file's owner in errors (``sample run 1a2b3c4d's samples``).
    """
    traj = load_trajectory(samples_path)
    temperature = SampleMeta.from_dict(traj.meta, where=samples_of).temperature_K
    n_t = traj.positions.shape[0]
    first = min(int(math.floor(burn_in_fraction * n_t)), n_t - 1)
    pos = traj.positions[first:].reshape(-1, data.n_atoms, 3).astype(np.float64)
    ene = traj.energies[first:].reshape(-1)
    keep = _pick(len(pos), MAX_SAMPLE_FRAMES, seed)
    pos, ene = pos[keep], ene[keep]
    ref_idx = data.reference_indices(handle.split)
    if len(ref_idx) == 0:
        raise CrmseError(f"dataset {data.name!r} has no reference frames outside split {handle.split}")
    ref_pos, ref_e = data.positions[ref_idx], data.energies[ref_idx]
    comp = distribution_metrics(data.species, pos, ene, ref_pos, ref_e, temperature)
    metrics = dict(comp.metrics)
    arrays = dict(comp.arrays)
    finite = np.isfinite(pos).all(axis=(1, 2)) & np.isfinite(ene)
    t_ref = _pick(len(ref_idx), TCONF_FRAMES, seed + 1)
    t_smp = np.flatnonzero(finite)[_pick(int(finite.sum()), TCONF_FRAMES, seed + 2)]
    metrics[names.CONFIG_TEMPERATURE_REF_K] = (
        _tconf(handle, data.species, ref_pos[t_ref], data.forces[ref_idx][t_ref]),
        "K",
    )
    metrics[names.CONFIG_TEMPERATURE_SAMPLE_K] = (
        (_tconf(handle, data.species, pos[t_smp], None), "K") if len(t_smp) else (math.nan, "K")
    )
    metrics.update(virial_metrics(None, data.species, ref_pos, data.forces[ref_idx], "ref", seed=seed))
    metrics.update(
        virial_metrics(handle, data.species, _virial_sample_frames(traj, first), None, "sample", seed=seed)
    )
    metrics[compat.SAMPLING_TEMPERATURE_K] = (temperature, "K")
    metrics["n_sample_frames"] = (float(len(pos)), "1")
    metrics["n_ref_frames"] = (float(len(ref_idx)), "1")
    time_axis = traj.time_fs if np.isfinite(traj.time_fs).all() else traj.steps.astype(np.float64)
    arrays[names.SAMPLE_ENERGIES] = ene
    arrays[names.REF_ENERGIES] = ref_e
    arrays[names.SURVIVAL_TIME_PS] = time_axis / 1000.0
    arrays[names.SURVIVAL_FRACTION] = survival_curve(traj.stability, time_axis)
    arrays[names.MIN_HH_SAMPLE] = closest_hh(data.species, pos[finite_frames(pos)])
    arrays[names.MIN_HH_REF] = closest_hh(data.species, ref_pos)
    return metrics, arrays


@dataclass(frozen=True)
class EvaluateSpec:
    """A planned evaluate run (built without writing).

    Attributes:
        handle: the model evaluated (the sample run's, when samples are evaluated).
        data: its dataset.
        sample_run: the sample run whose samples are profiled, or None (test frames only).
        samples_path: its verified samples file, or None.
        seed: the bootstrap seed.
        new_run: the row the run records.
    """

    handle: ModelHandle
    data: Dataset
    sample_run: RunInfo | None
    samples_path: Path | None
    seed: int
    new_run: NewRun


def evaluate(
    ws: Workspace,
    ref: str,
    *,
    sample: str | None = None,
    name: str | None = None,
    device: str = "cpu",
    seed: int = 0,
    registry: Registry | None = None,
) -> EvaluateResult:
    """Evaluate run ``ref`` (a model or a sample run); register an ``evaluate`` run."""
    reg = registry or Registry.open(ws.ensure())
    spec = plan(ws, reg, ref, sample=sample, name=name, device=device, seed=seed)
    return execute(RunContext.create(ws, reg, spec.new_run), spec)


def plan(
    ws: Workspace,
    reg: Registry,
    ref: str,
    *,
    sample: str | None = None,
    name: str | None = None,
    device: str = "cpu",
    seed: int = 0,
) -> EvaluateSpec:
    """Resolve the model and its samples and decide the run's row (every refusal before it exists)."""
    check_option("--seed", seed)
    target = reg.get_run(ref)
    sample_run = target if target.kind == "sample" else (reg.get_run(sample) if sample else None)
    if sample_run is not None and sample_run.kind != "sample":
        raise CrmseError(
            f"--sample {sample}: run {sample_run.id} is a {sample_run.kind} run, not a sample run"
        )
    handle = resolve_model(reg, (sample_run or target).id, device=device, trust_code=ws.trust_code)
    data = load_dataset(reg, handle.dataset)
    check_species(handle, data)
    samples_path = None
    if sample_run is not None:
        arts = reg.artifacts(sample_run.id, kind=names.ARTIFACT_SAMPLES)
        if not arts:
            raise NotFoundError(
                f"sample run {sample_run.id} has no samples ({sample_run.status}); sample again"
            )
        samples_path = Path(arts[-1].path)
        verify_artifact(arts[-1])  # before the run exists: a damaged file leaves no failed run
    new_run = NewRun(
        kind="evaluate",
        name=name,
        dataset=handle.dataset,
        parent=(sample_run or target).id,
        config={
            "dataset": handle.dataset,
            "split": handle.split,
            "model_run": handle.run.id if handle.run else None,
            "sample_run": sample_run.id if sample_run else None,
            "burn_in_fraction": BURN_IN_FRACTION,
        },
        seed=seed,
    )
    return EvaluateSpec(handle, data, sample_run, samples_path, seed, new_run)


def execute(ctx: RunContext, spec: EvaluateSpec) -> EvaluateResult:
    """Evaluate as ``spec`` plans it into run ``ctx``, and close the run."""
    handle, data, sample_run, samples_path, seed = (
        spec.handle, spec.data, spec.sample_run, spec.samples_path, spec.seed
    )  # fmt: skip
    with ctx:
        with make_progress() as bar:
            task = bar.add_task("evaluate", total=2 if samples_path else 1, info="test frames")
            metrics = test_metrics(handle.potential, data, handle.split)
            if samples_path is None:  # the reference frames' virial temperature, DFT forces
                ref_idx = data.reference_indices(handle.split)
                if len(ref_idx):
                    metrics.update(
                        virial_metrics(
                            None,
                            data.species,
                            data.positions[ref_idx],
                            data.forces[ref_idx],
                            "ref",
                            seed=seed,
                        )
                    )
            bar.update(task, advance=1, info="distributions")
            evaluation = None
            if samples_path is not None and sample_run is not None:
                samples_of = f"sample run {sample_run.id}'s samples ({samples_path})"
                dist, arrays = distribution_part(handle, data, samples_path, seed=seed, samples_of=samples_of)
                metrics.update(dist)
                metrics.update(
                    {
                        k: (m.value, m.unit)
                        for k, m in ctx.registry.final_metrics(sample_run.id).items()
                        if k not in ("n_broken", "temperature_kinetic")
                    }
                )
                evaluation = ctx.artifact_path("evaluation.npz")
                with atomic_path(evaluation) as tmp, open(tmp, "wb") as fh:
                    np.savez(fh, **arrays)  # type: ignore[arg-type]  # the stub reads **kwds as allow_pickle
                ctx.add_artifact(names.ARTIFACT_EVALUATION, evaluation)
                bar.update(task, advance=1, info="done")
        ctx.log_metrics(finite(metric_rows(metrics)))  # NaN: undefined, not stored
    return EvaluateResult(ctx.run_id, metrics, evaluation)
