"""The state of a regularize run on disk: its starting point, checkpoints, chains and metric rows.

Split from :mod:`crmse_cli.stages.regularize` (the stage); these helpers read and write the
registry and the run's folder, nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from crmse_cli.errors import CrmseError
from crmse_cli.fileio import atomic_path
from crmse_cli.metric import Metric
from crmse_cli.model.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from crmse_cli.model.checkpoint_extra import CheckpointExtra
from crmse_cli.registry import compat
from crmse_cli.stages._models import ModelHandle, code_trusted, verify_checkpoint
from crmse_cli.train.contrastive import ContrastiveTrainer, UpdateRecord
from crmse_cli.train.distributed import DistContext
from crmse_cli.train.optim import averaged

if TYPE_CHECKING:
    from crmse_cli.registry.store import Registry
    from crmse_cli.stages._run import RunContext


@dataclass(frozen=True)
class PretrainState:
    """Where ``init = "raw"`` starts: a model run's raw weights and Adam state.

    Attributes:
        weights: the potential's state dict (raw, not averaged).
        optimizer: the Adam state dict of the run's optimizer.
        checkpoint: the file they were read from.
    """

    weights: dict[str, torch.Tensor]
    optimizer: dict[str, object]  # torch.optim.Optimizer.state_dict()
    checkpoint: str


def pretrain_state(reg: Registry, handle: ModelHandle, *, trust_code: bool = False) -> PretrainState | None:
    """The raw weights and Adam state at the end of the source model run (``init = "raw"``).

    A pretrain run's ``last`` checkpoint, or a regularize run's ``final`` (else ``last``) one: an
    MSE polish (``--lambda 0``) continues a CRMSE run's raw weights and Adam moments.

    ``trust_code``: the user's ``--trust-code`` (else the ``last`` file must be the run's own).
    """
    run = handle.run
    if run is not None and run.config.get("imported_from"):
        return None  # an imported model (stages/mace.py): its own weights, a fresh Adam
    if run is None or run.kind not in ("pretrain", "regularize"):
        raise CrmseError(
            "--init raw continues a model run's raw weights and Adam moments: pass a pretrain or regularize "
            "run to --from, or use --init ema"
        )
    ckpts = reg.checkpoints(run.id)
    tags = ("last",) if run.kind == "pretrain" else ("final", "last")
    lasts = next(([c for c in ckpts if c.tag == t] for t in tags if any(c.tag == t for c in ckpts)), [])
    if not lasts:
        raise CrmseError(
            f"{run.kind} run {run.id} has no '{tags[0]}' checkpoint with its Adam state; use --init ema"
        )
    path = verify_checkpoint(lasts[-1].path, lasts[-1].sha256)
    trusted = code_trusted(reg, path, run.id, trust_code=trust_code)
    pot, payload = load_checkpoint(path, device=handle.device, trust_code=trusted)
    state = CheckpointExtra.of(payload, where=f"checkpoint {path}").state
    if run.kind == "regularize":  # its trainer's Adam; raw weights beside the EMA ones if averaged
        ema = (
            compat.required_number(
                f"regularize run {run.id}'s contrastive settings",
                compat.regularize_contrastive(run.config),
                "ema_decay",
            )
            > 0
        )
        trainer = state.get("trainer")
        state = {
            "optimizer": trainer.get("optimizer") if isinstance(trainer, Mapping) else None,
            "train_weights": state.get("train_weights") if ema else None,
        }
    optimizer, weights = state.get("optimizer"), state.get("train_weights")
    if not isinstance(optimizer, Mapping):
        raise CrmseError(f"{path} holds no optimizer state; use --init ema")
    if not isinstance(weights, Mapping):
        weights = pot.state_dict()
    return PretrainState(weights=dict(weights), optimizer=dict(optimizer), checkpoint=str(path))


def save_state(
    ctx: RunContext,
    handle: ModelHandle,
    trainer: ContrastiveTrainer,
    tag: str,
    *,
    averaged_weights: bool = True,
    budget_choice: Mapping[str, object] | None = None,
) -> Path:
    """Checkpoint ``tag`` of the run: weights, optimizer, every rank's chains and RNG states.

    With an EMA (``ema_decay`` > 0) the checkpoint's model holds the averaged weights, as
    pretraining's do, and ``extra["train_weights"]`` the live ones a resume continues from;
    ``averaged_weights=False`` saves the model as it is (the force budget's chosen candidate),
    ``budget_choice`` the force budget's choice with it.
    """
    run_id = ctx.run_id
    path = ctx.run_dir / "checkpoints" / f"{tag}.pt"
    ranks = trainer.dist.gather_objects(trainer.state_dict())  # every rank's chains and generator
    if not trainer.dist.is_main:
        return path
    ema = trainer.ema if averaged_weights else None
    state = {k: v for k, v in handle.extra.state.items() if k != "optimizer"}  # pretraining's is not ours
    state.update(
        trainer=ranks[0],
        trainer_ranks=ranks,
        torch_rng=torch.get_rng_state(),
        train_weights=(
            {k: v.detach().clone() for k, v in handle.potential.state_dict().items()}
            if ema is not None
            else None
        ),  # never the parent's
    )
    extra = replace(
        handle.extra,
        regularize_run=run_id,
        dataset=handle.dataset,
        split=handle.split,
        budget_choice=budget_choice if budget_choice is not None else handle.extra.budget_choice,
        state=state,
    )
    with averaged(ema):
        sha = save_checkpoint(path, handle.potential, extra=extra)
    ctx.add_checkpoint(path, sha256=sha, step=trainer.update, format_version=FORMAT_VERSION, tag=tag)
    return path


def save_chains(ctx: RunContext, trainer: ContrastiveTrainer) -> None:
    """The chains of every rank, and their energies, as an artifact of the run."""
    with torch.no_grad():
        energies = trainer.dist.gather(trainer.energy_fn(trainer.chains).double()).cpu().numpy()
    positions = trainer.dist.gather(trainer.chains.detach()).cpu().numpy()
    if not trainer.dist.is_main:
        return
    path = ctx.artifact_path(f"chains_{trainer.update:05d}.npz")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            positions=positions,
            energies=energies,
            update=np.array(trainer.update),
        )
    ctx.add_artifact("chains", path, meta={"update": trainer.update})


def check_unchanged(run_id: str, stored: Mapping[str, object], given: Mapping[str, object]) -> None:
    """Refuse a setting given with ``--resume`` that differs from what the run was started with.

    Args:
        run_id: the resumed run.
        stored: every setting the resume runs with, those the run predates at their defaults (see
            ``regularize._config_from_run``); a key missing here is not checked.
        given: the settings the user gave explicitly.
    """
    for key, value in given.items():
        if key in stored and stored[key] != value:
            raise CrmseError(
                f"--resume: run {run_id} was started with {key} = {stored[key]!r}, not {value!r}; "
                "a resumed run keeps its settings (start a new run to change them)"
            )


def record_rows(r: UpdateRecord, lambda_units: str = "eV") -> list[Metric]:
    """The metric rows of one update (non-finite ones, e.g. MALA's acceptance under ULA, left out).

    ``lambda_eff`` (lambda after the run's schedule) carries the run's convention as its unit.
    """
    values = {
        "loss": (r.loss, "1"),
        "loss_mse": (r.loss_mse, "1"),
        "loss_c": (r.loss_c, "1"),
        "energy_data": (r.energy_data, "kcal/mol"),
        "energy_chains": (r.energy_chains, "kcal/mol"),
        "energy_chains_min": (r.energy_chains_min, "kcal/mol"),
        "chain_ks": (r.chain_ks, "1"),
        "resets": (float(r.resets), "1"),
        "chain_min_pair": (r.min_pair_A, "A"),
        "chains_outside": (r.share_outside, "1"),
        "lr": (r.lr, "1"),
        "grad_norm_mse": (r.grad_norm_mse, "1"),
        "grad_norm_c": (r.grad_norm_c, "1"),
        "grad_ratio": (r.grad_ratio, "1"),
        "chain_acceptance": (r.acceptance, "1"),
        "chain_tconf": (r.chain_tconf_K, "K"),
        "lambda_eff": (r.lambda_eff, lambda_units),
    }
    return [
        Metric(name=k, value=float(v), unit=u, step=r.update)
        for k, (v, u) in values.items()
        if math.isfinite(float(v))
    ]


def rank_state(state: Mapping[str, object], dist: DistContext) -> dict[str, object]:
    """This rank's trainer state from a checkpoint's resume state (refused at another world size)."""
    ranks = state.get("trainer_ranks") or [state["trainer"]]
    if not isinstance(ranks, list):
        raise CrmseError("the checkpoint's trainer state is not a list of ranks; rerun the run")
    if len(ranks) != dist.world_size:
        raise CrmseError(
            f"the checkpoint holds chains of {len(ranks)} process(es); resume with the same number "
            f"(torchrun --nproc-per-node {len(ranks)}), not {dist.world_size}"
        )
    return dict(ranks[dist.rank])
