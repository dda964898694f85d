"""`crmse pretrain`: MSE training of a GNN potential on a registered dataset, as a registry run.

Every epoch writes the resumable ``last`` checkpoint (and ``best`` when the validation loss
improves) atomically under ``<run dir>/checkpoints/`` and logs ``train_loss``, ``val_loss``,
``val_energy_mae``, ``val_force_mae`` and ``lr``. At the end the best weights are tested on the
split's test frames. On Ctrl-C the checkpoints of the last finished epoch stay registered and the
run is marked interrupted; ``resume=RUN`` continues the same run from its ``last`` checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from crmse_cli.config import JsonDict, from_dict, to_dict
from crmse_cli.data.dataset import Dataset
from crmse_cli.describe import frames_line
from crmse_cli.errors import CrmseError, NotFoundError
from crmse_cli.metric import Metric, metric_rows
from crmse_cli.model.checkpoint import FORMAT_VERSION
from crmse_cli.names import STOPPED_BY_TIME_BUDGET
from crmse_cli.progress import make_progress
from crmse_cli.registry.run_records import PretrainRecord
from crmse_cli.registry.store import Registry
from crmse_cli.runlock import refuse_if_busy
from crmse_cli.stages._models import code_trusted, load_dataset, verify_checkpoint
from crmse_cli.stages._run import NewRun, RunContext
from crmse_cli.stages.labels import dataset_for_labels
from crmse_cli.stages.mace import save_native
from crmse_cli.train.data import FrameSet, rows_digest
from crmse_cli.train.pretrain import (
    EpochRecord,
    PretrainConfig,
    PretrainTrainer,
    error_metrics,
)
from crmse_cli.workspace import Workspace

if TYPE_CHECKING:
    from crmse_cli.registry.store import RunInfo

log = logging.getLogger(__name__)

PRESETS: dict[str, dict[str, object]] = {
    # examples/default.toml: ethanol, the 1000 labelled frames of a training part (900 train,
    # 100 validate), 1000 epochs (~25 min on one quiet core).
    "default": {"n_train": 900},
    # The paper's 950 / 50.
    "paper": {"n_train": 950, "n_val": 50},
    # examples/quick.toml: a small model for about a minute on one core.
    "quick": {"model": {"features": 32, "layers": 2, "n_rbf": 16}, "n_train": 500, "max_epochs": 200},
    # examples/aspirin.toml: 21 atoms cost ~4x ethanol's time per frame: 400 epochs, ~40 min.
    "aspirin": {"n_train": 900, "max_epochs": 400},
}
"""Named configs: overrides of :class:`PretrainConfig`'s defaults (mirrored by ``examples/``)."""


@dataclass(frozen=True)
class PretrainResult:
    """The outcome of one pretrain run.

    Attributes:
        run_id: the registry run.
        checkpoint: the ``best`` checkpoint file (best validation loss).
        metrics: test metrics, name -> (value, unit): energy / force MAE and RMSE in kcal/mol,
            kcal/mol/A and their ``_meV`` twins (empty when the split has no test frames).
        epochs: epochs trained in total (over all resumes).
        best_epoch: the epoch whose weights are in ``checkpoint``.
        stop_reason: "max_epochs", "time_budget" (``max_minutes`` cut the run short; the run's
            metric ``stopped_by_time_budget`` is then 1) or "early_stopping".
        n_train: training frames; ``n_val``: validation frames.
        wall_s: wall-clock seconds of this call.
    """

    run_id: str
    checkpoint: Path
    metrics: dict[str, tuple[float, str]]
    epochs: int
    best_epoch: int
    stop_reason: str
    n_train: int
    n_val: int
    wall_s: float


def preset_config(name: str, overrides: Mapping[str, object] | None = None) -> PretrainConfig:
    """The named preset (see :data:`PRESETS`) with ``overrides`` applied (None values skipped)."""
    if name not in PRESETS:
        raise CrmseError(f"unknown pretrain preset {name!r}; choose one of {', '.join(PRESETS)}")
    data = _merge(PRESETS[name], {k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(PretrainConfig, data, where=f"preset {name}")


def pretrain(
    ws: Workspace,
    *,
    dataset: str | None = None,
    split: str | int = "01",
    config: PretrainConfig | None = None,
    name: str | None = None,
    resume: str | None = None,
    progress: bool = True,
    overrides: Mapping[str, object] | None = None,
    registry: Registry | None = None,
    labels: str = "rmd17",
) -> PretrainResult:
    """Train (or resume) a potential by MSE on ``dataset``'s split and record it as a run.

    Args:
        ws: the workspace (registry, run folders).
        dataset: a registered dataset name (e.g. "ethanol"); taken from the run on resume.
        split: "01".."05" (or 1..5).
        config: the hyper-parameters (default :class:`PretrainConfig`). On resume it may differ
            from the run's only in :data:`RESUMABLE_FIELDS`.
        name: a unique name for a new run.
        resume: id or name of a pretrain run to continue from its ``last`` checkpoint.
        progress: show a progress bar on stderr.
        overrides: config values applied last (None skipped); on resume only
            :data:`RESUMABLE_FIELDS`, e.g. ``{"max_epochs": 500}``.
        registry: an open Registry (default: ``Registry.open(ws)``).
        labels: ``rmd17`` (the dataset's own labels) or ``md17``: the original MD17 labels of the
            same frames, registered as dataset ``<dataset>-md17`` (see ``stages/labels.py``).
    """
    start = time.perf_counter()
    reg = registry if registry is not None else Registry.open(ws.ensure())
    spec = plan(
        ws, reg, dataset=dataset, split=split, config=config, name=name, resume=resume,
        overrides=overrides, labels=labels,
    )  # fmt: skip
    if spec.resume is not None:
        ctx = RunContext.resume(ws, reg, spec.resume)  # refused while another live process runs it
        ctx.mark_running()
    else:
        assert spec.new_run is not None
        ctx = RunContext.create(ws, reg, spec.new_run)
        log.info("run %s: %s", ctx.run_id, frames_line(PretrainRecord.of(ctx.run_id, spec.new_run.config)))
    return replace(execute(ctx, spec, progress=progress), wall_s=time.perf_counter() - start)


@dataclass(frozen=True, eq=False)
class PretrainSpec:
    """A planned pretrain run: its trainer and data (built without writing a row).

    Attributes:
        trainer: a fresh trainer, or one restored from the resumed run's ``last`` checkpoint.
        data: the dataset it trains on.
        new_run: the row a new run records; None for a resume.
        resume: the id of the run it resumes, else None.
    """

    trainer: PretrainTrainer
    data: Dataset
    new_run: NewRun | None = None
    resume: str | None = None


def plan(
    ws: Workspace,
    reg: Registry,
    *,
    dataset: str | None = None,
    split: str | int = "01",
    config: PretrainConfig | None = None,
    name: str | None = None,
    resume: str | None = None,
    overrides: Mapping[str, object] | None = None,
    labels: str = "rmd17",
) -> PretrainSpec:
    """The pretrain run :func:`pretrain` would make (arguments as there); every refusal is here.

    No run row is written or changed (``labels="md17"`` may register the ``-md17`` dataset). A new
    run's row is ``spec.new_run``: :func:`execute` it in ``RunContext.create(ws, reg, spec.new_run)``,
    or in a queued run's context (``queued=``); a resume's in ``RunContext.resume`` marked running.
    """
    if resume is not None:
        run_id, trainer, data = _resume(ws, reg, resume, dataset, config, overrides)
        return PretrainSpec(trainer=trainer, data=data, resume=run_id)
    if dataset is None:
        raise CrmseError("pass --dataset NAME (a fetched dataset, see `crmse datasets`) or --resume RUN")
    cfg = _apply(config or PretrainConfig(), overrides)
    data = load_dataset(reg, dataset_for_labels(ws, reg, dataset, labels))
    trainer = PretrainTrainer.create(cfg, data, split)
    new_run = NewRun(
        kind="pretrain", config=_run_config(trainer), dataset=data.name, seed=cfg.seed, name=name
    )
    return PretrainSpec(trainer=trainer, data=data, new_run=new_run)


def execute(ctx: RunContext, spec: PretrainSpec, *, progress: bool = True) -> PretrainResult:
    """Train run ``ctx`` as ``spec`` plans it, and close it (completed, interrupted or failed)."""
    start, trainer = time.perf_counter(), spec.trainer
    with ctx:
        metrics = _train(ctx, trainer, spec.data, progress)
    return PretrainResult(
        run_id=ctx.run_id,
        checkpoint=_checkpoint_dir(ctx.ws, ctx.run_id) / "best.pt",
        metrics=metrics,
        epochs=trainer.epoch,
        best_epoch=trainer.best_epoch,
        stop_reason=trainer.stop_reason or "",
        n_train=len(trainer.train_set),
        n_val=len(trainer.val_set),
        wall_s=time.perf_counter() - start,
    )


def _train(
    ctx: RunContext, trainer: PretrainTrainer, data: Dataset, progress: bool
) -> dict[str, tuple[float, str]]:
    """The epoch loop with checkpoints, metric rows and a progress bar; then the test metrics."""
    run_id = ctx.run_id
    folder = _checkpoint_dir(ctx.ws, run_id)

    def register(tag: str, sha: str, epoch: int) -> None:
        # File first (written atomically), then its row: a kill at any moment leaves every
        # registered checkpoint usable (`crmse sample RUN` after SIGKILL works).
        ctx.add_checkpoint(
            folder / f"{tag}.pt", sha256=sha, step=epoch, format_version=FORMAT_VERSION, tag=tag
        )

    def on_epoch(record: EpochRecord) -> None:
        if record.improved:
            register("best", trainer.save_best(folder / "best.pt"), record.epoch)
        register("last", trainer.save_last(folder / "last.pt"), record.epoch)
        ctx.log_metrics(_epoch_rows(record))

    trainer.attach(on_epoch)
    with _bar(progress, trainer) as advance:
        for record in trainer.epochs():
            advance(record)
    log.info("run %s stopped after epoch %d (%s)", run_id, trainer.epoch, trainer.stop_reason)
    by_time = trainer.stop_reason == "time_budget"
    if by_time:
        log.warning(
            "run %s: the time budget (max_minutes %g) stopped it after epoch %d of max_epochs %d, "
            "at lr %.3g (the schedule had not annealed); rerun without --max-minutes to reproduce it",
            run_id, trainer.config.max_minutes, trainer.epoch, trainer.config.max_epochs, trainer.loop.lr,
        )  # fmt: skip
    ctx.log_metric(STOPPED_BY_TIME_BUDGET, float(by_time), "1", step=trainer.epoch)
    save_native(ctx.ws, ctx.registry, run_id, trainer.best_potential())  # MACE: also in mace-torch's format
    _, test_rows = data.split(trainer.meta["split"])
    if len(test_rows) == 0:
        log.warning(
            "dataset %s split %s has no test frames; no test metrics", data.name, trainer.meta["split"]
        )
        return {}
    cfg = trainer.config
    test = FrameSet.from_dataset(data, test_rows, dtype=cfg.model.torch_dtype, device=cfg.device)
    metrics = error_metrics(trainer.test(test), prefix="test")
    ctx.log_metrics(metric_rows(metrics, split="test"))
    return metrics


@contextlib.contextmanager
def _bar(enabled: bool, trainer: PretrainTrainer) -> Iterator[Callable[[EpochRecord], None]]:
    """A progress bar over epochs with live losses; yields ``advance(record)``."""
    if not enabled:
        yield lambda record: None
        return

    with make_progress() as bar:
        task = bar.add_task("pretrain", total=trainer.config.max_epochs, completed=trainer.epoch, info="")

        def advance(r: EpochRecord) -> None:
            # Short, so the bar keeps its room in an 80-column terminal.
            losses = f"loss {r.train_loss:.3g}/{r.val_loss:.3g}"
            info = f"{losses} E {r.val_energy_mae:.2f} F {r.val_force_mae:.2f}"
            bar.update(task, completed=r.epoch, info=info)

        yield advance


def _epoch_rows(r: EpochRecord) -> list[Metric]:
    rows = [
        ("train_loss", r.train_loss, "1", "train"),
        ("val_loss", r.val_loss, "1", "val"),
        ("val_energy_mae", r.val_energy_mae, "kcal/mol", "val"),
        ("val_force_mae", r.val_force_mae, "kcal/mol/A", "val"),
        ("lr", r.lr, "1", None),
    ]
    return [Metric(name=n, value=v, unit=u, step=r.epoch, split=s) for n, v, u, s in rows]


def _run_config(trainer: PretrainTrainer) -> dict[str, object]:
    """The run's config JSON: the PretrainConfig plus dataset, split and the frames.

    ``val_frames_sha256`` names the validation frames (:func:`crmse_cli.train.data.rows_digest`).
    """
    out = to_dict(trainer.config)
    n_train, n_val = len(trainer.train_set), len(trainer.val_set)
    out.update(
        labels="md17" if str(trainer.meta["dataset"]).endswith("-md17") else "rmd17",
        dataset=trainer.meta["dataset"],
        split=trainer.meta["split"],
        # n_train: training frames; under the old val_fraction rule it counted both.
        n_train=n_train + n_val if trainer.config.val_fraction is not None else n_train,
        n_train_frames=n_train,
        n_val_frames=n_val,
        val_frames_sha256=rows_digest(trainer.val_set.rows),
    )
    return out


def _resume(
    ws: Workspace,
    reg: Registry,
    ref: str,
    dataset: str | None,
    config: PretrainConfig | None,
    overrides: Mapping[str, object] | None,
) -> tuple[str, PretrainTrainer, Dataset]:
    """Run ``ref`` with a trainer restored from its last checkpoint (its lock is taken later)."""
    run = reg.get_run(ref)
    if run.kind != "pretrain":
        raise CrmseError(f"--resume {ref}: run {run.id} is a {run.kind} run, not a pretrain run")
    if run.config.get("imported_from"):
        raise CrmseError(
            f"run {run.id} is a model imported from {run.config['imported_from']}, not trained here; "
            "regularize it or pretrain a new run"
        )
    data_name = run.config.get("dataset") or run.dataset
    if not data_name:
        raise CrmseError(f"--resume {ref}: run {run.id} records no dataset; start a new run instead")
    if dataset is not None and dataset != data_name:
        raise CrmseError(f"run {run.id} trained on dataset {data_name!r}, not {dataset!r}; drop --dataset")
    refuse_if_busy(ws.run_dir(run.id), run.id)  # a live run first, whatever else is wrong
    path = _last_checkpoint(ws, reg, run)
    data = load_dataset(reg, data_name)
    trusted = code_trusted(reg, path, run.id, trust_code=ws.trust_code)  # the run's own last.pt
    trainer = PretrainTrainer.from_checkpoint(
        path,
        data,
        config=config,
        overrides=None if overrides is None else dict(overrides),
        trust_code=trusted,
    )
    return run.id, trainer, data


def _last_checkpoint(ws: Workspace, reg: Registry, run: RunInfo) -> Path:
    """The run's ``last`` checkpoint: the file in its run folder (written every epoch)."""
    registered = [c for c in reg.checkpoints(run.id) if c.tag == "last"]
    if registered:
        return verify_checkpoint(registered[-1].path, registered[-1].sha256)
    path = _checkpoint_dir(ws, run.id) / "last.pt"
    if path.is_file():  # written by a crmse that registered checkpoints only at the end
        return path
    raise NotFoundError(
        f"run {run.id} has no 'last' checkpoint (it stopped in its first epoch); start a new run"
    )


def _apply(config: PretrainConfig, overrides: Mapping[str, object] | None) -> PretrainConfig:
    changes: JsonDict = {
        k: v for k, v in (overrides or {}).items() if v is not None
    }  # checked by PretrainConfig
    if not changes:
        return config
    model = changes.pop("model", None)
    if isinstance(model, dict):
        changes["model"] = replace(config.model, **model)
    try:
        return replace(config, **changes)
    except (TypeError, ValueError) as exc:
        raise CrmseError(f"invalid pretrain setting: {exc}") from exc


def _merge(base: Mapping[str, object], extra: Mapping[str, object]) -> dict[str, object]:
    out = dict(base)
    for k, v in extra.items():
        old = out.get(k)
        out[k] = _merge(old, v) if isinstance(v, Mapping) and isinstance(old, Mapping) else v
    return out


def _checkpoint_dir(ws: Workspace, run_id: str) -> Path:
    return ws.run_dir(run_id) / "checkpoints"


__all__ = ["PRESETS", "PretrainResult", "PretrainSpec", "execute", "plan", "preset_config", "pretrain"]
