"""The recipe `stabilize` and `reproduce` run: CRMSE, then an MSE polish the force budget cuts.

The chain runs on the synthetic workspace (tests/synthetic.py) with a known force-error path
along the polish (the budget's scores are replaced by a path whose answer is known), so the test
checks the wiring and the choice, not the numbers of a tiny model.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from synthetic import make_workspace, tiny_pretrain

from crmse_cli.errors import CrmseError
from crmse_cli.report.verdict import Evidence, control_line, polish_line, verdict_lines
from crmse_cli.train import budget as rule
from crmse_cli.train.budget import BudgetConfig, Candidate


def _crmse() -> Any:
    from crmse_cli.stages.regularize_config import RegularizeConfig
    from crmse_cli.train.contrastive import ContrastiveConfig

    c = ContrastiveConfig(n_chains=2, steps_per_update=2, n_updates=2, batch_size=4, warmup_updates=1, seed=1)
    budget = BudgetConfig(force_budget=0.1, budget_every=1, screen_replicas=2, screen_steps=20)
    return RegularizeConfig(contrastive=c, budget=budget, val_every=1, checkpoint_every=1, chains_every=2)


def test_the_recipe_gives_the_budget_to_the_polish_and_crmse_keeps_the_old_behaviour() -> None:
    from crmse_cli.stages.recipe import POLISH_CHAINS, recipe

    crmse = _crmse()
    both = recipe("crmse+polish", crmse, force_budget=0.07, polish_updates=30, polish_every=5)
    assert both.polish is not None and not both.crmse.budget.on  # CRMSE runs to its last update
    assert both.crmse.contrastive == crmse.contrastive
    c, b = both.polish.contrastive, both.polish.budget
    assert (c.lambda_, c.chain_source, c.n_chains, c.n_updates) == (0.0, "data", POLISH_CHAINS, 30)
    assert (c.warmup_updates, c.init, c.optimizer_init) == (0, "raw", "inherit")  # CRMSE's Adam moments
    assert (c.lr, c.seed, c.batch_size) == (crmse.contrastive.lr, 1, 4)  # the rest is CRMSE's
    assert (b.force_budget, b.budget_every, b.screen_steps) == (0.07, 5, 0)
    assert (b.budget_pick, b.budget_frames) == ("first", "held")
    alone = recipe("crmse", crmse, force_budget=0.07)
    assert alone.polish is None and alone.crmse == crmse  # as before: CRMSE with its own budget
    with pytest.raises(CrmseError, match="--recipe"):
        recipe("polish", crmse, force_budget=0.1)


# Force MAE along the polish relative to the pretrain ancestor's: update 0 is the CRMSE model.
PATH = {0: 1.30, 1: 1.16, 2: 1.08, 3: 1.05, 4: 1.03}


@pytest.mark.slow
@pytest.mark.parametrize(("budget", "want", "over"), [(0.10, 2, False), (0.02, 4, True)])
def test_the_recipe_chains_crmse_then_polish_and_picks_the_earliest_within_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: float, want: int, over: bool
) -> None:
    import torch

    from crmse_cli.model.checkpoint import load_checkpoint
    from crmse_cli.registry.store import Registry
    from crmse_cli.stages import regularize_budget
    from crmse_cli.stages.recipe import recipe, run_recipe

    os.environ["CRMSE_NO_PROGRESS"] = "1"
    real = regularize_budget.BudgetKeeper.score

    def known_path(self: Any, handle: Any, update: int) -> Candidate:
        c = real(self, handle, update)  # scored for real, then given the known path
        assert self.reference_mae is not None  # the pretrain ancestor's, on the same frames
        return replace(c, val_force_mae=PATH[update] * self.reference_mae)

    monkeypatch.setattr(regularize_budget.BudgetKeeper, "score", known_path)
    ws = make_workspace(tmp_path / "home")
    tiny_pretrain(ws, name="mine")
    reg = Registry.open(ws)
    made: list[str] = []

    def step(what: str, start: Any, resume: Any, parent: str | None) -> str:
        made.append(what)
        return str(start(f"mine-{what}"))

    plan = recipe("crmse+polish", _crmse(), force_budget=budget, polish_updates=4, polish_every=1)
    runs = run_recipe(ws, reg, "mine", plan, step=step, parent=reg.get_run("mine").id)
    assert made == ["crmse", "polish"] and runs.model == runs.polish
    crmse, polish = reg.get_run(runs.crmse), reg.get_run(str(runs.polish))
    assert crmse.parent == reg.get_run("mine").id and polish.parent == crmse.id
    assert crmse.config["budget"]["force_budget"] is None  # no candidates along CRMSE
    assert not [m for m in reg.metrics(crmse.id, name=rule.CHOICE_UPDATE)]
    finals = {k: m.value for k, m in reg.final_metrics(polish.id).items()}
    assert finals[rule.CHOICE_UPDATE] == want and finals[rule.N_CANDIDATES] == 5
    assert finals[rule.OVER_BUDGET] == float(over)
    assert finals[rule.CHOICE_REL_FORCE] == pytest.approx(PATH[want] - 1)
    # The polish continues CRMSE's final raw weights: its candidate 0 is the CRMSE model.
    tags = {c.tag: c.path for c in reg.checkpoints(polish.id)}
    start, _ = load_checkpoint(tags["candidate-0"])
    crmse_final, _ = load_checkpoint(next(c.path for c in reg.checkpoints(crmse.id) if c.tag == "final"))
    for a, b in zip(start.state_dict().values(), crmse_final.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # The polish's final model is the chosen candidate's weights.
    chosen, _ = load_checkpoint(tags[f"candidate-{want}"])
    final, _ = load_checkpoint(tags["final"])
    for a, b in zip(chosen.state_dict().values(), final.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # The verdict names the pick and whether it was within budget.
    line = polish_line(finals, budget)
    if over:
        assert line.startswith("MSE polish: none of 5 candidates within the +2% force budget")
        assert f"kept the most accurate, update {want}: force MAE" in line
    else:
        assert line.startswith(f"MSE polish: the +10% force budget picked update {want} of 5 candidates")
    assert line.endswith("OVER budget") == over and line.endswith("within budget") != over
    assert f"force MAE {100 * (PATH[want] - 1):+.1f}% vs the original model" in line


def test_the_verdict_leads_with_stability_control_and_the_polish_pick() -> None:
    errs = {"test_force_mae": 1.0, "test_force_rmse": 2.0}
    after = {"test_force_mae": 1.07, "test_force_rmse": 2.0}
    polish = {
        rule.CHOICE_UPDATE: 40.0,
        rule.CHOICE_REL_FORCE: 0.076,
        rule.N_CANDIDATES: 11.0,
        rule.N_FRAMES: 800.0,
        rule.OVER_BUDGET: 0.0,
        rule.REFERENCE_FORCE_MAE: 1.2,
        rule.CHOICE_LEFT: 0.0,
    }
    diag = {"hessian_ratio_soft": 1.0}
    lines = verdict_lines(
        Evidence(11, 64, errs),
        Evidence(1, 64, after),
        budget=polish,
        force_budget=0.1,
        control=Evidence(11, 64),
        diagnosis=diag,
    )
    assert lines[0].startswith("left the basin: 11/64 -> 1/64 (Fisher p = ")
    assert lines[1].startswith("against the lambda = 0 control (same fine-tuning without L_C): 1/64 vs 11/64")
    assert lines[2] == (
        "MSE polish: the +10% force budget picked update 40 of 11 candidates: force MAE +7.6% vs the "
        "original model on 800 labelled frames no run trained on, within budget"
    )
    assert lines[3].startswith("test force MAE +7.0%") and lines[4].startswith("repair, not softening")
    # Update 0 is the CRMSE model, not the original: never "kept the original model".
    zero = polish_line({**polish, rule.CHOICE_UPDATE: 0.0}, 0.1)
    assert "update 0 (CRMSE as it ended)" in zero and "original model on" in zero
    over = polish_line({**polish, rule.OVER_BUDGET: 1.0, rule.CHOICE_REL_FORCE: 0.15}, 0.1)
    assert over.startswith("MSE polish: none of 11 candidates within the +10% force budget")
    assert over.endswith("+15.0% vs the original model on 800 labelled frames no run trained on, OVER budget")
    assert control_line(Evidence(1, 64), Evidence(None, None)) is None
    # A CRMSE run budgeted against its own parent still reads as before.
    kept = {rule.CHOICE_UPDATE: 0.0, rule.PARENT_FALLBACK: 1.0}
    assert verdict_lines(Evidence(3, 4, errs), Evidence(3, 4, errs), budget=kept)[1] == (
        "no candidate within the force budget: kept the original model"
    )
