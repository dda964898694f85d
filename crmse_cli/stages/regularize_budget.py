"""The registry side of `crmse regularize --force-budget`: candidates, their scores, the choice.

A :class:`BudgetKeeper` is an observer of the trainer. The parent (the checkpoint ``--from``
names) is candidate 0, scored before the first update; every ``budget_every`` updates and at the
end the run's current weights (the trainer's EMA weights when it keeps an average) are saved as
checkpoint ``candidate-<update>`` and scored: validation errors with
:func:`crmse_cli.train.accuracy.frame_errors` (pretraining's), and a stability screen of R
replicas of BAOAB from training frames, judged by :class:`crmse_cli.sampling.monitor.StabilityMonitor`
(``crmse sample``'s test), with the same seed for every candidate. Scores are metric rows written
at once, before the run's next checkpoint, so a resumed run reads them back instead of scoring
again. The budget's reference is the validation force MAE of the nearest pretrain run up the
parent's ancestry (the parent itself when it is one), scored once and logged. :meth:`BudgetKeeper.finish`
applies :func:`crmse_cli.train.budget.choose` and loads the chosen weights into the model, which
the stage then saves as ``final``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import IO, TYPE_CHECKING

import numpy as np
import torch

from crmse_cli.errors import CrmseError
from crmse_cli.fileio import atomic_write
from crmse_cli.model.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from crmse_cli.sampling.kinds import build_sampler
from crmse_cli.sampling.monitor import StabilityMonitor
from crmse_cli.sampling.observers import SamplerState
from crmse_cli.sampling.sample_config import SampleConfig
from crmse_cli.stages._models import ModelHandle, code_trusted, run_checkpoint, sampler_forces
from crmse_cli.stages.sample import _start_frames
from crmse_cli.train import budget as rule
from crmse_cli.train.accuracy import frame_errors
from crmse_cli.train.budget import BudgetChoice, BudgetConfig, Candidate
from crmse_cli.train.optim import averaged

if TYPE_CHECKING:
    from crmse_cli.data.dataset import Dataset
    from crmse_cli.stages._run import RunContext
    from crmse_cli.train.contrastive import ContrastiveTrainer, UpdateRecord

ARTIFACT_BUDGET = "budget"
"""Regularize run with a force budget: JSON of every scored candidate and the choice."""
CHECK_EVERY = 10
"""Screen steps between stability checks (``crmse sample``'s default)."""


def check_budget(
    budget: BudgetConfig, data: Dataset, split: str, val_rows: np.ndarray, world_size: int
) -> None:
    """Refuse a budget the run cannot score, before the run row exists (one line each)."""
    if not budget.on:
        return
    if world_size > 1:
        raise CrmseError("--force-budget scores candidates in one process; run it without torchrun")
    if len(val_rows) == 0:
        raise CrmseError(
            "--force-budget compares validation force errors, and the source has no validation "
            "frames; pass a pretrain run (its checkpoint records them)"
        )
    if len(data.reference_indices(split)) == 0:
        raise CrmseError(
            f"--force-budget's stability screen needs reference frames; dataset {data.name!r} split "
            f"{split} has none"
        )


class BudgetKeeper:
    """Keeps, scores and finally chooses the candidates of one regularize run.

    Args:
        ctx: the run the candidates are written to.
        handle: the run's model (its ``potential`` is the one being trained).
        data: the dataset; ``val_rows`` its validation frames.
        budget: the settings; ``temperature_K`` the screen's default temperature; ``seed`` the
            screen's seed (the same for every candidate).
        trainer: the run's trainer (its loop's EMA, when any, gives the candidates' weights).
    """

    def __init__(
        self,
        ctx: RunContext,
        handle: ModelHandle,
        data: Dataset,
        val_rows: np.ndarray,
        budget: BudgetConfig,
        *,
        temperature_K: float,
        seed: int,
        trainer: ContrastiveTrainer,
    ) -> None:
        self.ctx = ctx
        self.ws, self.reg, self.run_id = ctx.ws, ctx.registry, ctx.run_id
        self.handle, self.data, self.val_rows = handle, data, val_rows
        self.budget = budget
        self.trainer = trainer
        self.seed = seed
        self.choice_extra: dict[str, object] | None = None  # set by finish
        self.screen_config = SampleConfig(
            temperature_K=budget.screen_temperature_K or temperature_K,
            replicas=budget.screen_replicas,
            steps=max(budget.screen_steps, 1),  # 0: no screen runs (see screen)
            check_every=CHECK_EVERY,
            start="train",
            seed=seed,
            device=str(handle.device),
        )
        ref = data.positions[data.reference_indices(handle.split)]
        self.monitor = StabilityMonitor.from_reference(data.species, ref)
        self.scored: dict[int, Candidate] = {c.update: c for c in self._logged()}
        self.reference_run: str | None = None  # the pretrain ancestor, when the parent is not one
        self.reference_mae: float | None = None
        self.paths: dict[int, str] = {
            int(c.tag.split("-", 1)[1]): c.path
            for c in self.reg.checkpoints(self.run_id)
            if c.tag.startswith("candidate-")
        }

    # -- scores ---------------------------------------------------------------------------------
    def _logged(self) -> list[Candidate]:
        names = (rule.VAL_FORCE_MAE, rule.VAL_FORCE_RMSE, rule.VAL_ENERGY_MAE, rule.LEFT, rule.REPLICAS)
        rows = {
            n: [(int(m.step), m.value) for m in self.reg.metrics(self.run_id, name=n) if m.step is not None]
            for n in names
        }
        return rule.candidates_from_rows(rows)

    def score(self, handle: ModelHandle, update: int) -> Candidate:
        """Validation errors and screen of ``handle``'s potential as it is now (eval mode)."""
        pot = handle.potential
        was_training = pot.training
        pot.eval()
        try:
            errors = frame_errors(handle.potential, self.data, self.val_rows, prefix="val")
            left = self.screen(handle)
        finally:
            pot.train(was_training)
        return Candidate(
            update=update,
            val_force_mae=errors["val_force_mae"][0],
            left=left,
            replicas=self.budget.screen_replicas if self.budget.screen_steps else 0,
            val_force_rmse=errors["val_force_rmse"][0],
            val_energy_mae=errors["val_energy_mae"][0],
        )

    def screen(self, handle: ModelHandle) -> int:
        """Replicas of the stability screen that left the physical basin (paired: fixed seed; 0 steps: 0)."""
        cfg = self.screen_config
        if self.budget.screen_steps == 0:
            return 0
        pot, device = handle.potential, handle.device
        pick = torch.Generator().manual_seed(cfg.seed)
        start = _start_frames(self.data, handle.split, "train", cfg.replicas, pick)
        gen = torch.Generator(device=device).manual_seed(cfg.seed)
        species = torch.as_tensor(self.data.species, device=device)
        sampler = build_sampler(
            cfg.integrator,
            sampler_forces(self.ws, pot, species),
            cfg.sampler_settings,
            generator=gen,
            species=self.data.species,
            dtype=pot.dtype,
        )
        monitor = self.monitor
        monitor.reset()

        def check(s: SamplerState) -> None:
            monitor.update(s.positions, s.step, s.time_fs)
            if monitor.all_left:
                sampler.request_stop()

        sampler.attach(check, every=cfg.check_every)
        state = sampler.init_state(torch.as_tensor(start, dtype=pot.dtype, device=device))
        for _ in sampler.irun(state, cfg.steps):  # Ctrl-C propagates: the run is interrupted
            pass
        last = sampler.last_state
        if last is not None and last.step % cfg.check_every:  # the end is always judged
            monitor.update(last.positions, last.step, last.time_fs)
        return int(monitor.left.sum())

    def _log(self, candidate: Candidate) -> None:
        reference = self.reference_mae or self.scored.get(0, candidate).val_force_mae
        self.ctx.log_metrics(rule.candidate_rows(candidate, reference))
        self.scored[candidate.update] = candidate

    # -- candidates -----------------------------------------------------------------------------
    def _save(self, potential: torch.nn.Module, update: int) -> None:
        tag = f"candidate-{update}"
        path = self.ws.run_dir(self.run_id) / "checkpoints" / f"{tag}.pt"
        extra = replace(
            self.handle.extra,
            regularize_run=self.run_id,
            budget_candidate=update,
            state={k: v for k, v in self.handle.extra.state.items() if k != "optimizer"},
        )
        sha = save_checkpoint(path, potential, extra=extra)  # type: ignore[arg-type]
        self.ctx.add_checkpoint(path, sha256=sha, step=update, format_version=FORMAT_VERSION, tag=tag)
        self.paths[update] = str(path)

    def _reference(self) -> None:
        """The pretrain ancestor's validation force MAE (kept None when the parent is a pretrain run)."""
        run = self.handle.run
        while run is not None and run.kind != "pretrain" and run.parent is not None:
            run = self.reg.get_run(run.parent)
        if run is None or self.handle.run is None or run.id == self.handle.run.id or run.kind != "pretrain":
            return
        self.reference_run = run.id
        logged = self.reg.metrics(self.run_id, name=rule.REFERENCE_FORCE_MAE)
        if logged:
            self.reference_mae = float(logged[-1].value)
            return
        checkpoint = run_checkpoint(self.reg, run)
        trusted = code_trusted(self.reg, checkpoint, run.id, trust_code=self.ws.trust_code)
        pot, _ = load_checkpoint(checkpoint, device=self.handle.device, trust_code=trusted)
        pot.eval()
        errors = frame_errors(pot, self.data, self.val_rows, prefix="val")
        self.reference_mae = float(errors["val_force_mae"][0])
        self.ctx.log_metric(rule.REFERENCE_FORCE_MAE, self.reference_mae, "kcal/mol/A")

    def start(self) -> None:
        """Candidate 0: the parent itself (the checkpoint ``--from`` named), unless already scored."""
        if not self.reg.metrics(self.run_id, name=rule.N_FRAMES):
            self.reg.log_metric(self.run_id, name=rule.N_FRAMES, value=float(len(self.val_rows)), unit="1")
        self._reference()
        if 0 in self.scored:
            return
        parent_pot, _ = load_checkpoint(
            self.handle.checkpoint, device=self.handle.device, trust_code=self.handle.trusted
        )
        self._save(parent_pot, 0)
        self._log(self.score(replace(self.handle, potential=parent_pot), 0))

    def __call__(self, rec: UpdateRecord) -> None:
        """Observer: keep and score a candidate (every ``budget_every`` updates and at the end)."""
        if rec.update in self.scored:  # a resumed run redoes updates: never score twice
            return
        with torch.no_grad(), averaged(self.trainer.loop.ema):
            self._save(self.handle.potential, rec.update)
        with averaged(self.trainer.loop.ema):
            self._log(self.score(self.handle, rec.update))

    def finish(self) -> BudgetChoice:
        """Choose, record the choice and its evidence, and load the chosen weights into the model."""
        assert self.budget.force_budget is not None
        candidates = sorted(self.scored.values(), key=lambda c: c.update)
        choice = rule.choose(
            candidates,
            self.budget.force_budget,
            reference_mae=self.reference_mae,
            pick=self.budget.budget_pick,
        )
        path = self.paths.get(choice.chosen.update)
        if path is None:
            raise CrmseError(f"candidate of update {choice.chosen.update} has no checkpoint; rerun the run")
        chosen, _ = load_checkpoint(path, device=self.handle.device, trust_code=True)  # written by this run
        self.handle.potential.load_state_dict(chosen.state_dict())
        self.ctx.log_metrics(rule.choice_rows(choice))
        record = {
            "force_budget": self.budget.force_budget,
            "settings": asdict(self.budget),
            "screen_temperature_K": self.screen_config.temperature_K,
            "parent_checkpoint": str(self.handle.checkpoint),
            "chosen_update": choice.chosen.update,
            "chosen_checkpoint": path,
            "rel_force": choice.rel_force,
            "n_within": choice.n_within,
            "parent_fallback": choice.parent_fallback,
            "over_budget": choice.over_budget,
            "reference_run": self.reference_run,
            "reference_val_force_mae": self.reference_mae or self.scored[0].val_force_mae,
            "candidates": [asdict(c) for c in candidates],
        }
        self.choice_extra = {  # what the final checkpoint records (stages.regularize_state.save_state)
            k: record[k] for k in ("force_budget", "chosen_update", "rel_force", "parent_fallback")
        }
        out = self.ctx.artifact_path("budget.json")
        text = json.dumps(record, indent=1).encode()

        def write(fh: IO[bytes]) -> None:
            fh.write(text)

        atomic_write(out, write)
        self.ctx.add_artifact(
            ARTIFACT_BUDGET,
            out,
            meta={"chosen_update": choice.chosen.update, "parent_fallback": choice.parent_fallback},
        )
        return choice


def budget_rows(
    data: Dataset, split: str, train_rows: np.ndarray, val_rows: np.ndarray, frames: str, positives: str
) -> np.ndarray:
    """The labelled frames each candidate is scored on (``BudgetConfig.budget_frames``).

    ``"val"``: the pretrain run's validation frames. ``"held"``: every frame of the split's
    training part that the run does not train on (the validation frames included), so the budget
    reads on ~8x the frames at 200 + 100 of rMD17's 1000. Refused with ``positives = "split"``,
    whose L_C data term uses those frames' positions.
    """
    if frames == "val":
        rows = np.asarray(val_rows, dtype=np.int64)
    elif positives != "labelled":
        raise CrmseError(
            f"--budget-frames held scores candidates on the frames that --positives {positives} "
            "trains L_C on; use --budget-frames val, or --positives labelled"
        )
    else:
        train_part, _ = data.split(split)
        rows = np.setdiff1d(np.asarray(train_part, dtype=np.int64), np.asarray(train_rows, dtype=np.int64))
    if len(rows) == 0:
        raise CrmseError(
            f"the force budget has no labelled frames to score on (--budget-frames {frames}): "
            "the model names no validation frames and the split leaves none held out"
        )
    return rows


def budget_keeper(
    ctx: RunContext,
    handle: ModelHandle,
    data: Dataset,
    val_rows: np.ndarray,
    budget: BudgetConfig,
    trainer: ContrastiveTrainer,
) -> BudgetKeeper | None:
    """The force budget's observer with its parent scored (None without a budget, or off rank 0)."""
    if not budget.on or not trainer.dist.is_main:
        return None
    cfg = trainer.config
    keeper = BudgetKeeper(
        ctx, handle, data, val_rows, budget,
        temperature_K=cfg.temperature_K, seed=cfg.seed, trainer=trainer,
    )  # fmt: skip
    keeper.start()
    return keeper
