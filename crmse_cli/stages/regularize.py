"""`crmse regularize`: CRMSE post-training of a pretrained potential (METHOD.md, "CRMSE post-training").

The run starts from a model run's checkpoint (or a checkpoint file), trains on the same training
frames as pretraining with the same energy/force weights, and logs every update to the registry.
Checkpoints hold the weights, the optimizer, the persistent chains and every RNG state, so
``resume`` continues exactly where the run stopped. Chains are saved as artifacts at the start,
every ``chains_every`` updates and at the end: they are the negative samples.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from pathlib import Path
from types import FrameType

import numpy as np
import torch

from crmse_cli.config import JsonDict
from crmse_cli.data.dataset import Dataset
from crmse_cli.errors import CrmseError
from crmse_cli.metric import Metric, metric_rows
from crmse_cli.model.checkpoint import load_checkpoint
from crmse_cli.model.checkpoint_extra import CheckpointExtra
from crmse_cli.model.forces import ForceFn
from crmse_cli.model.graph import make_graph
from crmse_cli.model.potential import Potential
from crmse_cli.progress import make_progress
from crmse_cli.registry import compat
from crmse_cli.registry.store import Registry
from crmse_cli.runlock import refuse_if_busy
from crmse_cli.stages import regularize_arms as arms
from crmse_cli.stages._models import (
    ModelHandle,
    check_species,
    code_trusted,
    load_dataset,
    resolve_model,
    run_checkpoint,
    sampler_forces,
)
from crmse_cli.stages._run import NewRun, RunContext
from crmse_cli.stages.mace import save_native
from crmse_cli.stages.regularize_budget import budget_keeper, budget_rows, check_budget
from crmse_cli.stages.regularize_config import RegularizeConfig
from crmse_cli.stages.regularize_state import (
    PretrainState,
    check_unchanged,
    pretrain_state,
    rank_state,
    record_rows,
    save_chains,
    save_state,
)
from crmse_cli.train.accuracy import frame_errors, test_metrics
from crmse_cli.train.budget import BudgetConfig
from crmse_cli.train.contrastive import ContrastiveConfig, ContrastiveTrainer, UpdateRecord, pair_minimum
from crmse_cli.train.distributed import DistContext
from crmse_cli.train.optim import averaged
from crmse_cli.workspace import Workspace

_PLAIN = tuple(f.name for f in fields(RegularizeConfig) if f.name not in ("contrastive", "budget"))
"""RegularizeConfig's own settings, stored at the top level of the run's config."""


@dataclass(frozen=True)
class RegularizeResult:
    """A finished regularize run: id, final checkpoint, test metrics (name -> (value, unit)), wall time."""

    run_id: str
    checkpoint: Path
    metrics: dict[str, tuple[float, str]]
    wall_s: float


def _frames(handle: ModelHandle, data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows) of the pretraining run, else the split's train part."""
    train, val = handle.extra.train_indices, handle.extra.val_indices
    if train is None:
        train, _ = data.split(handle.split)
        val = np.zeros(0, dtype=np.int64)
    return np.asarray(train, dtype=np.int64), np.asarray(val if val is not None else [], dtype=np.int64)


def _with_loss_weights(cfg: ContrastiveConfig, handle: ModelHandle) -> ContrastiveConfig:
    """Fill unset w_E / w_F from the source run (explicit values are honoured).

    A pretrain run's, or a regularize run's own (an MSE polish keeps the loss it continues).
    """
    if handle.run is not None and handle.run.kind == "regularize":
        source = compat.regularize_contrastive(handle.run.config)
    else:
        source = dict(handle.extra.config or {})
    trained_e, trained_f = compat.trained_loss_weights(source)
    w_e = cfg.energy_weight if cfg.energy_weight is not None else trained_e
    w_f = cfg.force_weight if cfg.force_weight is not None else trained_f
    return replace(cfg, energy_weight=w_e, force_weight=w_f)


def _val_mae(handle: ModelHandle, data: Dataset, rows: np.ndarray) -> dict[str, tuple[float, str]]:
    """Errors on the validation frames (``val_energy_mae``, ``val_force_mae``, ...), as pretraining's."""
    return frame_errors(handle.potential, data, rows, prefix="val") if len(rows) else {}


@dataclass(frozen=True)
class RegularizeSpec:
    """A planned regularize run: what it starts from and with which settings (built without writing).

    Attributes:
        config: the settings it runs with (a resumed run's own).
        handle: the source model (a resume: the run's source checkpoint).
        data: the source's dataset.
        start: pretraining's raw weights and Adam state (``init = "raw"``), else None.
        new_run: the row a new run records; None for a resume.
        resume: the id of the run it resumes, else None.
    """

    config: RegularizeConfig
    handle: ModelHandle
    data: Dataset
    start: PretrainState | None = None
    new_run: NewRun | None = None
    resume: str | None = None


def regularize(
    ws: Workspace,
    source: str | None,
    config: RegularizeConfig,
    *,
    name: str | None = None,
    resume: str | None = None,
    registry: Registry | None = None,
    settings: Mapping[str, object] | None = None,
) -> RegularizeResult:
    """Run (or resume) CRMSE post-training of ``source`` (model run id/name or checkpoint).

    ``settings``: the settings the user gave explicitly (field name -> value). A
    resumed run keeps its own; one that differs from the run's is refused, naming the setting.
    """
    reg = registry or Registry.open(ws.ensure())
    dist = DistContext.from_env(config.device)
    spec = plan(ws, reg, source, config, name=name, resume=resume, settings=settings, dist=dist)
    return execute(run_context(ws, reg, spec, dist), spec, dist)


def plan(
    ws: Workspace,
    reg: Registry,
    source: str | None,
    config: RegularizeConfig,
    *,
    name: str | None = None,
    resume: str | None = None,
    settings: Mapping[str, object] | None = None,
    dist: DistContext | None = None,
) -> RegularizeSpec:
    """Check the inputs and decide the run, before any row exists or changes (every refusal here)."""
    dist = dist or DistContext()
    if resume is not None:
        run = reg.get_run(resume)
        if run.kind != "regularize":
            raise CrmseError(f"--resume {resume}: run {run.id} is a {run.kind} run, not a regularize run")
        if run.status == "completed":
            raise CrmseError(f"run {run.id} already completed; nothing to resume")
        if dist.is_main:  # a live run first, whatever else is wrong; not on the other ranks, where
            # rank 0 of this same resume may already hold the run's lock (a race under load)
            refuse_if_busy(ws.run_dir(run.id), run.id)
        # What the resume runs with: settings the run predates read as their defaults, so one given
        # with another value is refused rather than silently dropped.
        resumed = _config_from_run(run.config, device=config.device)
        own = {n: getattr(resumed, n) for n in _PLAIN if n != "device"}  # val_every, ...: kept too
        stored = {**asdict(resumed.budget), **asdict(resumed.contrastive), **own}
        check_unchanged(run.id, stored, settings or {})
        checkpoint = compat.required(f"regularize run {run.id}'s config", run.config, "source_checkpoint")
        handle = resolve_model(reg, str(checkpoint), device=config.device, trust_code=ws.trust_code)
        dist.check_shards(_shards(resumed.contrastive))
        run_checkpoint(reg, run)  # checksum-verified: a corrupt last.pt refuses, the run stays as it was
        data = load_dataset(reg, handle.dataset)
        check_species(handle, data)
        return RegularizeSpec(config=resumed, handle=handle, data=data, resume=run.id)
    if source is None:
        raise CrmseError("pass --from RUN_OR_CHECKPOINT (a pretrain run) or --resume RUN")
    # torchrun: before the run row exists, so a refused split leaves no failed run behind.
    dist.check_shards(_shards(config.contrastive))
    handle = resolve_model(reg, source, device=config.device, trust_code=ws.trust_code)
    config = replace(config, contrastive=_with_loss_weights(config.contrastive, handle))
    # Checked before the run row exists: a wrong --from with --init raw leaves no failed run.
    raw = config.contrastive.init == "raw"
    start = pretrain_state(reg, handle, trust_code=ws.trust_code) if raw else None
    data = load_dataset(reg, handle.dataset)
    train_rows, val_rows = _frames(handle, data)
    arms.check_arms(config.contrastive, force_budget=config.budget.force_budget, val_rows=val_rows)
    if config.budget.on:  # refused before the run row exists
        check_budget(config.budget, data, handle.split, val_rows, dist.world_size)
        budget_rows(
            data,
            handle.split,
            train_rows,
            val_rows,
            config.budget.budget_frames,
            config.contrastive.positives,
        )
    check_species(handle, data)
    c = config.contrastive
    run_config = {
        "dataset": handle.dataset,
        "split": handle.split,
        "source_run": handle.run.id if handle.run else None,
        "source_checkpoint": str(handle.checkpoint),
        "model": dict(handle.model_config),
        "n_train": int(len(train_rows)),
        "lambda": c.lambda_,
        "lambda_units": c.lambda_units,
        "lambda_internal": c.lambda_internal,
        "eta_A2": c.eta_A2,
        "eta_units": c.eta_units,
        "eta_beta_scaled_A2": c.eta_internal_A2,  # what the chains step
        "lc_beta": c.lc_beta,
        "steps_per_update": c.steps_per_update,
        "n_chains": c.n_chains,
        "contrastive": asdict(c),
        "budget": asdict(config.budget),
        **{n: getattr(config, n) for n in _PLAIN},
        "processes": dist.world_size,
    }
    new_run = NewRun(
        kind="regularize",
        name=name,
        dataset=handle.dataset,
        parent=handle.run.id if handle.run else None,
        config=run_config,
        seed=c.seed,
    )
    return RegularizeSpec(config=config, handle=handle, data=data, start=start, new_run=new_run)


def run_context(ws: Workspace, reg: Registry, spec: RegularizeSpec, dist: DistContext) -> RunContext:
    """The run ``spec`` works on: a new one, or the resumed one marked running (rank 0 writes)."""
    if spec.resume is not None:
        if not dist.is_main:
            return RunContext(ws, reg, spec.resume, lock=None, owner=False)
        ctx = RunContext.resume(ws, reg, spec.resume)  # refused while another live process runs it
        ctx.mark_running()
        return ctx
    assert spec.new_run is not None
    # One writer: rank 0 makes the run; every rank learns its id.
    made = RunContext.create(ws, reg, spec.new_run) if dist.is_main else None
    run_id = dist.broadcast(made.run_id if made is not None else None)
    return made or RunContext(ws, reg, str(run_id), lock=None, owner=False)


def execute(ctx: RunContext, spec: RegularizeSpec, dist: DistContext | None = None) -> RegularizeResult:
    """Train run ``ctx`` as ``spec`` plans it, and close it (completed, interrupted or failed)."""
    dist = dist or DistContext()
    if not ctx.owner:
        result = _train(ctx, spec, dist=dist)
    else:
        # torchrun stops the survivors of a crashed rank with SIGTERM: a failure. A single process
        # leaves SIGTERM to the CLI, where it is Ctrl-C: the run ends interrupted and resumable.
        on_term = terminated_as_failure(lambda why: _mark_failed(ctx.ws, ctx.run_id, why))
        term = on_term if dist.enabled else nullcontext()
        with term, ctx:  # term outside: it also covers the closing write
            result = _train(ctx, spec, dist=dist)
    dist.finish()  # after rank 0 has written the run: the ranks leave the process group together
    return result


def _shards(cfg: ContrastiveConfig) -> dict[str, int]:
    """The counts a torchrun job splits over its processes, by the option that sets each."""
    return {"--chains": cfg.n_chains, "--batch-size": cfg.batch_size}


def _config_from_run(cfg: Mapping[str, object], *, device: str) -> RegularizeConfig:
    """The run's RegularizeConfig back from its stored config (older runs: ``registry.compat``)."""
    known = {f.name for f in fields(ContrastiveConfig)}
    c = {k: v for k, v in compat.regularize_contrastive(cfg).items() if k in known}
    rest: JsonDict = {k: cfg[k] for k in _PLAIN if k in cfg}  # as recorded; checked by RegularizeConfig
    rest["device"] = device
    budget = BudgetConfig(**compat.regularize_budget(cfg))
    return RegularizeConfig(contrastive=ContrastiveConfig(**c), budget=budget, **rest)


def _build_trainer(
    handle: ModelHandle,
    data: Dataset,
    train_rows: np.ndarray,
    cfg: ContrastiveConfig,
    start: PretrainState | None = None,
    dist: DistContext | None = None,
    positives: np.ndarray | None = None,
    chain_forces: Callable[[Potential, torch.Tensor], ForceFn] | None = None,
) -> ContrastiveTrainer:
    pot = handle.potential
    if start is not None:
        pot.load_state_dict(start.weights)
    dev, dt = handle.device, pot.dtype
    species = torch.as_tensor(data.species, device=dev)
    x = torch.as_tensor(data.positions[train_rows], dtype=dt, device=dev)
    e = torch.as_tensor(data.energies[train_rows], dtype=torch.float64, device=dev)
    f = torch.as_tensor(data.forces[train_rows], dtype=dt, device=dev)
    pool = None if positives is None else torch.as_tensor(data.positions[positives], dtype=dt, device=dev)
    ref_rows = data.reference_indices(handle.split)
    pmin = pair_minimum(
        torch.as_tensor(data.positions[ref_rows if len(ref_rows) else train_rows], dtype=dt, device=dev)
    )

    def energy_fn(positions: torch.Tensor) -> torch.Tensor:
        return pot(make_graph(positions, species))

    pot.train()
    params = [p for p in pot.parameters() if p.requires_grad]  # pretraining's optimizer order
    return ContrastiveTrainer(
        energy_fn,
        params,
        x,
        e,
        f,
        cfg,
        pair_min_A=pmin,
        optimizer_state=start.optimizer if start is not None and cfg.optimizer_init == "inherit" else None,
        dist=dist,
        positive_positions=pool,
        chain_force_fn=None if chain_forces is None else chain_forces(pot, species),
    )


def _mark_failed(ws: Workspace, run_id: str, why: str) -> None:
    """Write ``failed`` through a fresh registry connection (the stage's may be mid-transaction)."""
    try:
        Registry.open(ws).set_status(run_id, "failed", error=why)
    except Exception:  # noqa: BLE001 - best effort inside a signal handler; tracked() retries
        pass


@contextmanager
def terminated_as_failure(on_term: Callable[[str], None]) -> Iterator[None]:
    """Turn SIGTERM (torchrun stopping the survivors of a crashed rank) into a failed run.

    For torchrun jobs of more than one process only; elsewhere SIGTERM is Ctrl-C (the CLI's
    handler) and the run ends ``interrupted``.

    ``on_term(why)`` records the failure first (torchrun kills for good after a grace period),
    then SystemExit unwinds the stage.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        why = f"terminated by signal {signum} (another process of the run failed?)"
        on_term(why)
        raise SystemExit(why)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _progress_info(rec: UpdateRecord) -> str:
    return (
        f"L_C {rec.loss_c:+.2f}  |λ∇L_C|/|∇L_MSE| {rec.grad_ratio:.2f}  KS {rec.chain_ks:.2f}  "
        f"out {rec.share_outside:.2f}  resets {rec.resets}"
    )


def _train(ctx: RunContext, spec: RegularizeSpec, *, dist: DistContext) -> RegularizeResult:
    t0 = time.perf_counter()
    handle, data, config, resuming = spec.handle, spec.data, spec.config, spec.resume is not None
    reg = ctx.registry
    train_rows, val_rows = _frames(handle, data)
    cfg = config.contrastive
    parent_mae = arms.parent_force_mae(handle, data, val_rows) if cfg.lambda_control == "budget" else None
    pool = arms.positive_rows(data, handle.split, train_rows, val_rows, cfg.positives)
    trainer = _build_trainer(
        handle,
        data,
        train_rows,
        cfg,
        spec.start,
        dist,
        positives=pool,
        chain_forces=partial(sampler_forces, ctx.ws),
    )
    steer = arms.lambda_steer(trainer, parent_mae, config.budget.force_budget)
    if not resuming and math.isfinite(trainer.stiffness):
        ctx.log_metric("eta_beta_kmax", trainer.stiffness, "1", step=0)
    if resuming:
        last = run_checkpoint(reg, ctx.run)
        trusted = code_trusted(reg, last, ctx.run_id, trust_code=ctx.ws.trust_code)
        pot, payload = load_checkpoint(last, device=handle.device, trust_code=trusted)
        state = CheckpointExtra.of(payload, where=f"checkpoint {last}").state
        live = state.get("train_weights") if trainer.ema is not None else None
        weights = live if isinstance(live, Mapping) and live else pot.state_dict()  # EMA: the raw weights
        handle.potential.load_state_dict(weights)
        trainer.load_state_dict(rank_state(state, dist))
        rng = state.get("torch_rng")
        if not isinstance(rng, torch.Tensor):
            raise CrmseError(f"checkpoint {last} holds no RNG state; it cannot be resumed, rerun the run")
        torch.set_rng_state(rng)
    else:
        save_chains(ctx, trainer)
        save_state(ctx, handle, trainer, "last")
    # Rows since the last checkpoint are only written with it: after Ctrl-C, --resume redoes
    # those updates exactly, so nothing is logged twice.
    pending: list[Metric] = []

    def log_rows(rec: UpdateRecord) -> None:
        pending.extend(record_rows(rec, cfg.lambda_units))

    def validate(rec: UpdateRecord) -> None:
        handle.potential.eval()
        with averaged(trainer.ema):  # the weights that are saved: the EMA's when averaging
            errors = _val_mae(handle, data, val_rows)
        pending.extend(metric_rows(errors, split="val", step=rec.update))
        steer(errors)  # lambda_control "budget": the next updates' lambda
        handle.potential.train()

    def checkpoint(rec: UpdateRecord) -> None:
        if rec.update % config.checkpoint_every == 0:  # not at the end: the final state follows
            ctx.log_metrics(pending)
            pending.clear()
            save_state(ctx, handle, trainer, "last")

    def chains(rec: UpdateRecord) -> None:
        if rec.update % config.chains_every == 0 and rec.update != cfg.n_updates:
            save_chains(ctx, trainer)

    keeper = None
    if config.budget.on:
        frames = config.budget.budget_frames
        scored = budget_rows(data, handle.split, train_rows, val_rows, frames, cfg.positives)
        keeper = budget_keeper(ctx, handle, data, scored, config.budget, trainer)
    if keeper is not None:  # before the checkpoint hook: a candidate is scored before "last" moves on
        trainer.attach(keeper, every=config.budget.budget_every)
    trainer.attach(log_rows)
    trainer.attach(validate, every=config.val_every)
    trainer.attach(checkpoint, every=config.checkpoint_every)
    trainer.attach(chains, every=config.chains_every)
    with make_progress(disable=not dist.is_main) as bar:
        task = bar.add_task(
            f"CRMSE λ={cfg.lambda_:g} ({cfg.lambda_units})",
            total=cfg.n_updates,
            completed=trainer.update,
            info="",
        )
        trainer.attach(lambda rec: bar.update(task, completed=rec.update, info=_progress_info(rec)))
        for _ in trainer.updates():
            pass
    if pending:
        ctx.log_metrics(pending)
    handle.potential.eval()
    save_chains(ctx, trainer)
    if keeper is not None:
        keeper.finish()  # the chosen candidate's weights become the run's final model
    final_ema = trainer.ema if keeper is None else None  # the budget's choice is final as it is
    final = save_state(
        ctx,
        handle,
        trainer,
        "final",
        averaged_weights=final_ema is not None,
        budget_choice=keeper.choice_extra if keeper is not None else None,
    )
    if not ctx.owner:
        return RegularizeResult(ctx.run_id, final, {}, time.perf_counter() - t0)
    with averaged(final_ema):
        save_native(ctx.ws, reg, ctx.run_id, handle.potential)  # MACE: also in mace-torch's format
        metrics = test_metrics(handle.potential, data, handle.split)
    ctx.log_metrics(metric_rows(metrics, split="test"))
    return RegularizeResult(ctx.run_id, final, metrics, time.perf_counter() - t0)
