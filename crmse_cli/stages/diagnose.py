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

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from crmse_cli.analysis.diagnosis import (
    ModelSurface,
    collapse_part,
    collapsed_frames,
    energy_ks_part,
    hessian_part,
    sampled_energies,
    slope_part,
)
from crmse_cli.analysis.study import PooledStability, fisher_left
from crmse_cli.data.dataset import Dataset
from crmse_cli.defaults import TEMPERATURE_K
from crmse_cli.errors import CrmseError
from crmse_cli.fileio import atomic_path, sha256_file
from crmse_cli.metric import Metric, finite, metric_rows
from crmse_cli.model.forces import potential_energy_fn
from crmse_cli.progress import make_progress
from crmse_cli.registry.store import Registry
from crmse_cli.sampling.langevin import masses_from_species
from crmse_cli.sampling.monitor import StabilityMonitor
from crmse_cli.stages._models import ModelHandle, check_species, load_dataset, resolve_model
from crmse_cli.stages._run import tracked
from crmse_cli.stages.diagnose_config import DiagnoseConfig
from crmse_cli.workspace import Workspace

if TYPE_CHECKING:
    from crmse_cli.registry.entities import RunInfo


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
    surface: ModelSurface  # label: run, mse, control

    @property
    def label(self) -> str:
        return self.surface.label

    @property
    def run(self) -> RunInfo:
        """The model's registry run (never None: :func:`_handle` refuses bare checkpoints)."""
        assert self.handle.run is not None
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
    return _Model(handle, ModelSurface(label, potential_energy_fn(handle.potential, species), handle.device))


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
        label: sampled_energies(_samples_path(reg, runs[-1])) for label, runs in run_samples.items() if runs
    }
    return energy_ks_part(energies, ref_e)


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
    masses = masses_from_species(data.species).numpy() if cfg.mass_weighted else None
    ref_idx = data.reference_indices(split)
    if len(ref_idx) == 0:
        raise CrmseError(f"dataset {data.name!r} has no reference frames outside split {split}")
    start = data.positions[ref_idx[int(np.argmin(data.energies[ref_idx]))]]
    with make_progress() as bar:
        task = bar.add_task("diagnose", total=5, info="Hessians")
        surfaces = [m.surface for m in models]
        metrics, arrays, comps = hessian_part(
            surfaces,
            mse.surface,
            start,
            fmax=cfg.fmax,
            soft_modes=cfg.soft_modes,
            stiff_modes=cfg.stiff_modes,
            masses=masses,
        )
        bar.update(task, advance=1, info="force slopes")
        m2, a2 = slope_part(
            [*surfaces, mse.surface],
            data,
            split,
            comps["run"],
            soft_modes=cfg.soft_modes,
            max_test_frames=cfg.max_test_frames,
            masses=masses,
        )
        bar.update(task, advance=1, info="collapsed frames")
        monitor = StabilityMonitor.from_reference(data.species, data.positions[ref_idx])
        paths = [_samples_path(reg, s) for s in run_samples["mse"]]
        frames, t_samples = collapsed_frames(paths, monitor, cfg.max_collapsed_frames, cfg.seed)
        temperature = cfg.temperature_K or t_samples or TEMPERATURE_K
        m3, a3 = collapse_part(surfaces, mse.surface, comps, frames, temperature)
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
    rows = finite(metric_rows(metrics))
    for i, (ev, ratio) in enumerate(zip(arrays["eigenvalues_mse"], arrays["ratios"], strict=True)):
        rows.append(Metric(name="mode_eigenvalue_mse", value=float(ev), unit=unit, step=i))
        rows.append(Metric(name="mode_hessian_ratio", value=float(ratio), unit="1", step=i))
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
