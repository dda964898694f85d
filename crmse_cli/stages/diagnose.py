"""`crmse diagnose`: is a post-trained model repaired or softened? (issue 13, "Instruments").

Compares a model run (RUN, e.g. CRMSE-regularized) with the MSE model it started from
(``against``) and, optionally, its lambda = 0 control, with the instruments of
:mod:`crmse_cli.analysis.instruments`:

1. Hessian curvature at the physical minimum, per mode of the MSE model: relax the lowest-energy
   reference frame under each model (L-BFGS, float64), Hessian by autograd of the forces, rigid
   body modes projected out; ratio model / MSE per mode; summary over the softest modes
   (torsions) and the stiffest. Softening: soft ratios fall toward T_model / T_ref; repair: ~1.
2. Slope (through the origin) of model forces against DFT forces along the MSE model's softest
   modes, over the split's test frames (each frame rotated onto the minimum).
3. The MSE model's collapsed frames (frames of its sample runs that fail the stability monitor's
   pair-collapse test) under both models, relative to each model's own minimum, in kT.
4. Replicas that left the basin, pooled over all completed sample runs of each model, with
   Fisher's exact test against the control and against MSE.
5. Energy KS model against model (sampled energies of RUN against MSE's) beside model against DFT.

Everything is stored as metrics (with units) of a ``diagnose`` run whose parent is RUN, and the
per-mode arrays as a ``diagnosis`` npz artifact.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from crmse_cli.analysis.instruments import (
    compare_hessians,
    energy_lift,
    mode_projections,
    slope_through_origin,
)
from crmse_cli.analysis.stats import energy_ks
from crmse_cli.analysis.study import PooledStability, fisher_left
from crmse_cli.data.dataset import Dataset
from crmse_cli.defaults import TEMPERATURE_K
from crmse_cli.errors import CrmseError
from crmse_cli.fileio import atomic_path, sha256_file
from crmse_cli.model.forces import forces_from_energy, potential_energy_fn
from crmse_cli.sampling.langevin import masses_from_species
from crmse_cli.sampling.monitor import REASONS, StabilityMonitor
from crmse_cli.sampling.trajectory import load_trajectory
from crmse_cli.stages._models import ModelHandle, check_species, load_dataset, resolve_model
from crmse_cli.stages._run import tracked
from crmse_cli.stages.diagnose_config import DiagnoseConfig
from crmse_cli.workspace import Workspace

if TYPE_CHECKING:
    from crmse_cli.registry.entities import RunInfo
    from crmse_cli.registry.store import Registry

BURN_IN_FRACTION = 0.1
"""Share of each trajectory dropped before the energy KS (as in ``crmse evaluate``)."""
COLLAPSE = REASONS.index("collapse")


@dataclass(frozen=True)
class DiagnoseResult:
    """The diagnose run, its metrics (name -> (value, unit)), the per-mode npz and the time taken."""

    run_id: str
    metrics: dict[str, tuple[float, str]]
    modes: dict[str, list[float]]
    diagnosis_path: Path
    wall_s: float


@dataclass(frozen=True, eq=False)
class _Model:
    handle: ModelHandle
    energy_fn: Any
    label: str  # run, mse, control

    @property
    def run(self) -> Any:
        """The model's registry run (never None: :func:`_handle` refuses bare checkpoints)."""
        return self.handle.run


def _handle(reg: Registry, ref: str, device: str, trust_code: bool) -> ModelHandle:
    handle = resolve_model(reg, ref, device=device, dtype="float64", trust_code=trust_code)
    if handle.run is None:
        raise CrmseError(
            f"{ref}: diagnose compares model runs (pretrain or regularize), not checkpoint files"
        )
    return handle


def ref_id(handle: ModelHandle) -> str:
    """What the model is called in a diagnose run's config: its run id, else its checkpoint path."""
    return str(handle.run.id) if handle.run is not None else str(handle.checkpoint)


def _model(handle: ModelHandle, data: Dataset, label: str) -> _Model:
    check_species(handle, data)
    if handle.dataset != data.name:
        raise CrmseError(f"run {ref_id(handle)} trained on {handle.dataset!r}, not {data.name!r}")
    species = torch.as_tensor(data.species, device=handle.device)
    return _Model(handle, potential_energy_fn(handle.potential, species), label)


def _energies(model: _Model, positions: np.ndarray, *, batch: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Energies (F,) and forces (F, N, 3) of frames under a model, float64, in batches."""
    es, fs = [], []
    for start in range(0, len(positions), batch):
        pos = torch.as_tensor(
            positions[start : start + batch], dtype=torch.float64, device=model.handle.device
        )
        pos.requires_grad_(True)
        e = model.energy_fn(pos)
        f = forces_from_energy(e, pos, create_graph=False)
        es.append(e.detach().cpu().numpy())
        fs.append(f.detach().cpu().numpy())
    if not es:
        return np.zeros(0), np.zeros((0, *positions.shape[1:]))
    return np.concatenate(es), np.concatenate(fs)


def _completed_samples(reg: Registry, run: RunInfo) -> list[RunInfo]:
    return [
        r
        for r in reg.children(run.id, kind="sample")
        if r.status == "completed" and reg.artifacts(r.id, kind="samples")
    ]


def _samples_path(reg: Registry, sample_run: RunInfo) -> Path:
    return Path(reg.artifacts(sample_run.id, kind="samples")[-1].path)


def _pooled(reg: Registry, sample_runs: list[RunInfo]) -> PooledStability:
    n = left = 0
    for s in sample_runs:
        m = reg.final_metrics(s.id)
        n += int(m["n_replicas"].value) if "n_replicas" in m else 0
        left += int(m["n_left"].value) if "n_left" in m else 0
    return PooledStability(n, left)


def _sampled_energies(path: Path) -> np.ndarray:
    traj = load_trajectory(path)
    first = min(int(math.floor(BURN_IN_FRACTION * traj.energies.shape[0])), traj.energies.shape[0] - 1)
    e = traj.energies[first:].ravel()
    return e[np.isfinite(e)]


def collapsed_frames(
    paths: list[Path], monitor: StabilityMonitor, limit: int, seed: int
) -> tuple[np.ndarray, float | None]:
    """Frames (F, N, 3) of sample artifacts that fail the pair-collapse test, and their temperature.

    Every recorded frame is checked again with ``monitor`` (built from the DFT reference frames);
    at most ``limit`` frames are kept (a seeded random pick).
    """
    frames, temps = [], []
    for path in paths:
        traj = load_trajectory(path)
        pos = traj.positions.reshape(-1, *traj.positions.shape[2:]).astype(np.float64)
        code = monitor.check(torch.as_tensor(pos)).numpy()
        frames.append(pos[code == COLLAPSE])
        if "temperature_K" in traj.meta:
            temps.append(float(traj.meta["temperature_K"]))
    out = np.concatenate(frames) if frames else np.zeros((0, monitor.n_atoms, 3))
    if len(out) > limit:
        out = out[np.sort(np.random.default_rng(seed).choice(len(out), size=limit, replace=False))]
    return out, (temps[0] if temps else None)


def _hessian_part(
    models: list[_Model], mse: _Model, start: np.ndarray, cfg: DiagnoseConfig, masses: np.ndarray | None
) -> tuple[dict[str, tuple[float, str]], dict[str, np.ndarray], dict[str, Any]]:
    metrics: dict[str, tuple[float, str]] = {}
    arrays: dict[str, np.ndarray] = {}
    comps = {}
    for m in models:
        cmp = compare_hessians(m.energy_fn, mse.energy_fn, start, masses=masses, fmax=cfg.fmax)
        comps[m.label] = cmp
        sfx = "" if m.label == "run" else f"_{m.label}"
        metrics[f"hessian_ratio_soft{sfx}"] = (cmp.soft_ratio(cfg.soft_modes), "1")
        metrics[f"hessian_ratio_stiff{sfx}"] = (cmp.stiff_ratio(cfg.stiff_modes), "1")
        metrics[f"minimum_rmsd{sfx}_A"] = (cmp.minimum_rmsd_A, "A")
        arrays[f"ratios{sfx}"] = cmp.ratios
        arrays[f"eigen_ratios{sfx}"] = cmp.eigen_ratios
        arrays[f"eigenvalues{sfx}"] = cmp.run_eigenvalues
        arrays[f"minimum{sfx}"] = cmp.run_minimum.positions
    first = comps[models[0].label]
    arrays["eigenvalues_mse"] = first.ref_eigenvalues
    arrays["minimum_mse"] = first.ref_minimum.positions
    arrays["mse_vectors"] = first.ref_vectors
    metrics["softest_eigenvalue_mse"] = (float(first.ref_eigenvalues[0]), first.unit)
    return metrics, arrays, comps


def _slope_part(
    models: list[_Model], data: Dataset, split: str, cmp: Any, cfg: DiagnoseConfig, masses: np.ndarray | None
) -> tuple[dict[str, tuple[float, str]], dict[str, np.ndarray]]:
    _, test = data.split(split)
    test = test[: cfg.max_test_frames]
    if len(test) == 0:
        return {}, {}
    pos, f_dft = data.positions[test], data.forces[test]
    vectors = cmp.ref_vectors[:, : cfg.soft_modes]
    ref_min = cmp.ref_minimum.positions
    p_dft = mode_projections(pos, f_dft, ref_min, vectors, masses)
    metrics: dict[str, tuple[float, str]] = {}
    arrays: dict[str, np.ndarray] = {}
    for m in models:
        _, f = _energies(m, pos)
        slopes = slope_through_origin(mode_projections(pos, f, ref_min, vectors, masses), p_dft)
        sfx = "" if m.label == "run" else f"_{m.label}"
        metrics[f"soft_force_slope{sfx}"] = (float(np.mean(slopes)), "1")
        arrays[f"soft_force_slopes{sfx}"] = slopes
    metrics["n_test_frames"] = (float(len(test)), "1")
    return metrics, arrays


def _collapse_part(
    models: list[_Model],
    mse: _Model,
    comps: dict[str, Any],
    frames: np.ndarray,
    temperature_K: float,
) -> tuple[dict[str, tuple[float, str]], dict[str, np.ndarray]]:
    metrics: dict[str, tuple[float, str]] = {"n_collapsed_frames": (float(len(frames)), "1")}
    arrays: dict[str, np.ndarray] = {}
    if len(frames) == 0:
        return metrics, arrays
    e_mse, _ = _energies(mse, frames)
    e_mse_min = comps[models[0].label].ref_minimum.energy
    for m in models:
        e, _ = _energies(m, frames)
        lift = energy_lift(e, comps[m.label].run_minimum.energy, e_mse, e_mse_min, temperature_K)
        sfx = "" if m.label == "run" else f"_{m.label}"
        metrics[f"collapse_lift{sfx}_kT"] = (lift.median_lift_kT, "kT")
        metrics[f"collapse_energy{sfx}_kT"] = (float(np.median(lift.run_kT)), "kT")
        arrays[f"collapse_lift{sfx}_kT"] = lift.lift_kT
        metrics["collapse_energy_mse_kT"] = (float(np.median(lift.ref_kT)), "kT")
    metrics["collapse_temperature_K"] = (temperature_K, "K")
    return metrics, arrays


def _stability_part(
    reg: Registry, run_samples: dict[str, list[RunInfo]]
) -> tuple[dict[str, tuple[float, str]], dict[str, list[str]]]:
    metrics: dict[str, tuple[float, str]] = {}
    pooled = {label: _pooled(reg, runs) for label, runs in run_samples.items()}
    for label, p in pooled.items():
        if p.n_replicas:
            metrics[f"replicas_{label}"] = (float(p.n_replicas), "1")
            metrics[f"left_{label}"] = (float(p.n_left), "1")
    run = pooled.get("run")
    for other in ("control", "mse"):
        q = pooled.get(other)
        if run is not None and q is not None and run.n_replicas and q.n_replicas:
            metrics[f"fisher_p_vs_{other}"] = (fisher_left(run, q), "1")
    return metrics, {label: [s.id for s in runs] for label, runs in run_samples.items()}


def _ks_part(
    reg: Registry, run_samples: dict[str, list[RunInfo]], ref_e: np.ndarray
) -> dict[str, tuple[float, str]]:
    energies = {
        label: _sampled_energies(_samples_path(reg, runs[-1])) for label, runs in run_samples.items() if runs
    }
    energies = {k: v for k, v in energies.items() if v.size}
    out: dict[str, tuple[float, str]] = {}
    for label, e in energies.items():
        out[f"energy_ks_{label}_vs_dft"] = (energy_ks(e, ref_e), "1")
        if label != "mse" and "mse" in energies:
            out[f"energy_ks_{label}_vs_mse"] = (energy_ks(e, energies["mse"]), "1")
    return out


def diagnose(
    ws: Workspace,
    run: str,
    *,
    against: str,
    control: str | None = None,
    samples: list[str] | None = None,
    config: DiagnoseConfig | None = None,
    name: str | None = None,
    registry: Registry | None = None,
) -> DiagnoseResult:
    """Compare model run ``run`` with the MSE model ``against`` (and a lambda = 0 ``control``).

    Args:
        ws: the workspace.
        run: the model under test (pretrain or regularize run, id or name).
        against: the MSE model run it came from.
        control: the lambda = 0 control run, if any.
        samples: sample runs of the MSE model whose collapsed frames are lifted; default every
            completed sample run of ``against``.
        config: :class:`DiagnoseConfig`.
        name: a unique name for the diagnose run.
        registry: an open Registry (default: ``Registry.open(ws)``).
    """
    from crmse_cli.registry.store import Registry

    t0 = time.perf_counter()
    cfg = config or DiagnoseConfig()  # validated by construction: the declarations of its fields
    reg = registry or Registry.open(ws.ensure())
    handle = _handle(reg, run, cfg.device, ws.trust_code)
    data = load_dataset(reg, handle.dataset)
    model = _model(handle, data, "run")
    mse = _model(_handle(reg, against, cfg.device, ws.trust_code), data, "mse")
    models = [model]
    if control is not None:
        models.append(_model(_handle(reg, control, cfg.device, ws.trust_code), data, "control"))
    mse_samples = [reg.get_run(s) for s in samples] if samples else _completed_samples(reg, mse.run)
    for s in mse_samples:
        if s.kind != "sample":
            raise CrmseError(f"--samples {s.id}: a {s.kind} run, not a sample run")
    run_samples = {m.label: _completed_samples(reg, m.run) for m in models}
    run_samples["mse"] = mse_samples
    split = model.handle.split
    diag = reg.create_run(
        kind="diagnose",
        name=name,
        dataset=data.name,
        parent=model.run.id,
        config={
            "dataset": data.name,
            "split": split,
            "run": model.run.id,
            "against": mse.run.id,
            "control": models[1].run.id if control is not None else None,
            **asdict(cfg),
        },
        seed=cfg.seed,
    )
    with tracked(reg, diag.id):
        return _diagnose_run(ws, reg, diag.id, models, mse, data, split, run_samples, cfg, t0)


def _diagnose_run(
    ws: Workspace,
    reg: Registry,
    run_id: str,
    models: list[_Model],
    mse: _Model,
    data: Dataset,
    split: str,
    run_samples: dict[str, list[RunInfo]],
    cfg: DiagnoseConfig,
    t0: float,
) -> DiagnoseResult:
    from crmse_cli.progress import make_progress

    masses = masses_from_species(data.species).numpy() if cfg.mass_weighted else None
    ref_idx = data.reference_indices(split)
    if len(ref_idx) == 0:
        raise CrmseError(f"dataset {data.name!r} has no reference frames outside split {split}")
    start = data.positions[ref_idx[int(np.argmin(data.energies[ref_idx]))]]
    with make_progress() as bar:
        task = bar.add_task("diagnose", total=5, info="Hessians")
        metrics, arrays, comps = _hessian_part(models, mse, start, cfg, masses)
        bar.update(task, advance=1, info="force slopes")
        m2, a2 = _slope_part([*models, mse], data, split, comps["run"], cfg, masses)
        bar.update(task, advance=1, info="collapsed frames")
        monitor = StabilityMonitor.from_reference(data.species, data.positions[ref_idx])
        paths = [_samples_path(reg, s) for s in run_samples["mse"]]
        frames, t_samples = collapsed_frames(paths, monitor, cfg.max_collapsed_frames, cfg.seed)
        temperature = cfg.temperature_K or t_samples or TEMPERATURE_K
        m3, a3 = _collapse_part(models, mse, comps, frames, temperature)
        bar.update(task, advance=1, info="stability")
        m4, sample_ids = _stability_part(reg, run_samples)
        bar.update(task, advance=1, info="energy KS")
        m5 = _ks_part(reg, run_samples, data.energies[ref_idx])
        bar.update(task, advance=1, info="done")
    for part in (m2, m3, m4, m5):
        metrics.update(part)
    for part_arrays in (a2, a3):
        arrays.update(part_arrays)
    metrics["diagnose_wall_s"] = (time.perf_counter() - t0, "s")
    unit = comps["run"].unit
    rows = [{"name": k, "value": float(v), "unit": u} for k, (v, u) in metrics.items() if math.isfinite(v)]
    for i, (ev, ratio) in enumerate(zip(arrays["eigenvalues_mse"], arrays["ratios"], strict=True)):
        rows.append({"name": "mode_eigenvalue_mse", "value": float(ev), "unit": unit, "step": i})
        rows.append({"name": "mode_hessian_ratio", "value": float(ratio), "unit": "1", "step": i})
    reg.log_metrics(run_id, rows)
    path = ws.run_dir(run_id) / "artifacts" / "diagnosis.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    reg.add_artifact(
        run_id, kind="diagnosis", path=str(path), sha256=sha256_file(path), meta={"samples": sample_ids}
    )
    modes: dict[str, list[float]] = {k: [float(x) for x in arrays[k]] for k in ("eigenvalues_mse", "ratios")}
    return DiagnoseResult(run_id, metrics, modes, path, time.perf_counter() - t0)
