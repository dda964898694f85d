"""`crmse regularize --force-budget`: the rule, the candidates a run keeps, the choice it records."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from synthetic import cli_main, make_workspace, one_line_error, regularize_cut_at, tiny_pretrain

from crmse_cli.errors import CrmseError
from crmse_cli.train import budget as rule
from crmse_cli.train.budget import BudgetConfig, Candidate, choose


def _c(update: int, mae: float, left: int) -> Candidate:
    return Candidate(update=update, val_force_mae=mae, left=left, replicas=32)


# -- the rule -----------------------------------------------------------------------------------
def test_rule_picks_the_most_stable_candidate_within_budget() -> None:
    cands = [_c(0, 1.00, 20), _c(25, 1.05, 9), _c(50, 1.09, 4), _c(75, 1.25, 0), _c(100, 1.10, 2)]
    choice = choose(cands, 0.10)
    # 75 is the most stable but 25% worse; 100 sits exactly on the budget line (<= counts).
    assert choice.chosen.update == 100
    assert choice.rel_force == pytest.approx(0.10)
    assert choice.n_within == 4 and choice.n_candidates == 5 and not choice.parent_fallback
    assert choose(cands, 0.05).chosen.update == 25  # a tighter budget: only 25 (and the parent)
    assert choose(cands, 0.3).chosen.update == 75


def test_rule_returns_the_parent_when_nothing_after_it_is_within_budget() -> None:
    cands = [_c(0, 2.0, 12), _c(25, 2.5, 1), _c(50, 3.0, 0), _c(75, math.nan, 0)]
    choice = choose(cands, 0.10)
    assert choice.chosen.update == 0 and choice.parent_fallback
    assert choice.rel_force == 0.0 and choice.n_within == 1


def test_rule_breaks_ties_by_force_error_then_by_update() -> None:
    cands = [_c(0, 1.0, 5), _c(25, 1.04, 3), _c(50, 1.02, 3), _c(75, 1.02, 3)]
    assert choose(cands, 0.1).chosen.update == 50  # 25, 50, 75 tie on left; 50, 75 on MAE
    # The parent wins a tie on replicas left when its force error is the lowest.
    assert choose([_c(0, 1.0, 3), _c(25, 1.01, 3)], 0.1).chosen.update == 0
    assert not choose([_c(0, 1.0, 3), _c(25, 0.99, 3)], 0.1).parent_fallback


def test_rule_needs_the_parent_and_a_positive_budget() -> None:
    with pytest.raises(CrmseError, match="parent"):
        choose([_c(25, 1.0, 0)], 0.1)
    with pytest.raises(CrmseError, match="budget"):
        choose([_c(0, 1.0, 0)], 0.0)


def test_candidates_come_back_from_their_metric_rows() -> None:
    cands = [_c(0, 1.0, 5), _c(25, 1.1, 2)]
    rows: dict[str, list[tuple[int, float]]] = {}
    for c in cands:
        for r in rule.candidate_rows(c, 1.0):
            rows.setdefault(r.name, []).append((int(r.step or 0), r.value))
    back = rule.candidates_from_rows(rows)
    assert [(c.update, c.val_force_mae, c.left, c.replicas) for c in back] == [
        (0, 1.0, 5, 32),
        (25, 1.1, 2, 32),
    ]
    assert dict(rows[rule.REL_FORCE])[25] == pytest.approx(0.1)


def test_budget_settings_are_validated() -> None:
    assert not BudgetConfig().on and BudgetConfig(force_budget=0.1).on
    for bad in (0.0, -0.1, 10.5, math.nan):
        with pytest.raises(CrmseError, match="force_budget"):
            BudgetConfig(force_budget=bad)
    with pytest.raises(CrmseError, match="screen_replicas"):
        BudgetConfig(force_budget=0.1, screen_replicas=0)


# -- the run ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    w = make_workspace(tmp_path_factory.mktemp("budget"))
    tiny_pretrain(w)
    return w


def _config(budget: float | None, updates: int = 4):  # noqa: ANN202
    from crmse_cli.stages.regularize import RegularizeConfig
    from crmse_cli.train.contrastive import ContrastiveConfig

    c = ContrastiveConfig(
        n_chains=2, steps_per_update=2, n_updates=updates, batch_size=4, warmup_updates=1, seed=1
    )
    b = BudgetConfig(force_budget=budget, budget_every=2, screen_replicas=3, screen_steps=20)
    return RegularizeConfig(contrastive=c, budget=b, val_every=2, checkpoint_every=1, chains_every=2)


def _logged(reg, run_id: str) -> list[Candidate]:  # noqa: ANN001
    names = (rule.VAL_FORCE_MAE, rule.VAL_FORCE_RMSE, rule.VAL_ENERGY_MAE, rule.LEFT, rule.REPLICAS)
    return rule.candidates_from_rows(
        {n: [(m.step, m.value) for m in reg.metrics(run_id, name=n)] for n in names}
    )


def test_a_budget_run_keeps_scores_and_chooses_a_candidate(ws) -> None:  # noqa: ANN001
    from crmse_cli.model.checkpoint import load_checkpoint
    from crmse_cli.registry.store import Registry
    from crmse_cli.stages._models import load_dataset, resolve_model
    from crmse_cli.stages.regularize import regularize
    from crmse_cli.train.accuracy import frame_errors

    res = regularize(ws, "tiny", _config(0.1), name="budget-run")
    reg = Registry.open(ws)
    run = reg.get_run("budget-run")
    assert run.status == "completed" and run.config["budget"]["force_budget"] == 0.1
    tags = {c.tag: c for c in reg.checkpoints(run.id)}
    assert {"candidate-0", "candidate-2", "candidate-4", "final"} <= set(tags)
    cands = _logged(reg, run.id)
    assert [c.update for c in cands] == [0, 2, 4] and all(c.replicas == 3 for c in cands)
    # Candidate 0 is the parent: its validation force MAE is the pretrain run's.
    handle = resolve_model(reg, "tiny")
    data = load_dataset(reg, handle.dataset)
    val_rows = handle.extra.val_indices
    parent_val = frame_errors(handle.potential, data, val_rows, prefix="val")["val_force_mae"][0]
    assert cands[0].val_force_mae == pytest.approx(parent_val, rel=1e-6)
    finals = reg.final_metrics(run.id)
    expected = choose(cands, 0.1)
    assert finals[rule.CHOICE_UPDATE].value == expected.chosen.update
    assert finals[rule.N_WITHIN].value == expected.n_within
    assert finals[rule.N_CANDIDATES].value == 3
    # The final model is the chosen candidate's weights.
    chosen, _ = load_checkpoint(tags[f"candidate-{expected.chosen.update}"].path)
    final, payload = load_checkpoint(res.checkpoint)
    for (k, a), (_, b) in zip(chosen.state_dict().items(), final.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    assert payload["extra"]["budget_choice"]["chosen_update"] == expected.chosen.update
    assert [a.kind for a in reg.artifacts(run.id, kind="budget")] == ["budget"]


def test_the_rule_returns_the_parent_when_every_candidate_is_over_budget(ws, monkeypatch) -> None:  # noqa: ANN001
    from crmse_cli.registry.store import Registry
    from crmse_cli.stages import regularize_budget
    from crmse_cli.stages.regularize import regularize

    real = regularize_budget.BudgetKeeper.score

    def worse_after_the_parent(self, handle, update):  # noqa: ANN001, ANN202
        c = real(self, handle, update)
        return c if update == 0 else Candidate(update, 10 * c.val_force_mae, 0, c.replicas)

    monkeypatch.setattr(regularize_budget.BudgetKeeper, "score", worse_after_the_parent)
    res = regularize(ws, "tiny", _config(0.1), name="budget-parent")
    reg = Registry.open(ws)
    finals = reg.final_metrics(res.run_id)
    assert finals[rule.CHOICE_UPDATE].value == 0 and finals[rule.PARENT_FALLBACK].value == 1
    parent = reg.get_run("tiny")
    from crmse_cli.model.checkpoint import load_checkpoint
    from crmse_cli.stages._models import run_checkpoint

    a, _ = load_checkpoint(run_checkpoint(reg, parent))
    b, _ = load_checkpoint(res.checkpoint)
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=k)


def test_without_a_budget_nothing_changes(ws) -> None:  # noqa: ANN001
    from crmse_cli.registry.store import Registry
    from crmse_cli.stages.regularize import regularize

    res = regularize(ws, "tiny", _config(None), name="no-budget")
    reg = Registry.open(ws)
    assert not [c for c in reg.checkpoints(res.run_id) if c.tag.startswith("candidate-")]
    assert not [k for k in reg.final_metrics(res.run_id) if k.startswith("budget_")]
    assert not reg.artifacts(res.run_id, kind="budget")


def test_a_resumed_budget_run_keeps_its_scored_candidates(ws, monkeypatch) -> None:  # noqa: ANN001
    from crmse_cli.registry.store import Registry
    from crmse_cli.stages import regularize_budget
    from crmse_cli.stages.regularize import regularize

    cfg = _config(0.1, updates=4)
    regularize_cut_at(ws, monkeypatch, "tiny", cfg, name="budget-cut", update=4)
    reg = Registry.open(ws)
    run_id = reg.get_run("budget-cut").id
    assert [c.update for c in _logged(reg, run_id)] == [0, 2]
    scored: list[int] = []
    real = regularize_budget.BudgetKeeper.score

    def counting(self, handle, update):  # noqa: ANN001, ANN202
        scored.append(update)
        return real(self, handle, update)

    monkeypatch.setattr(regularize_budget.BudgetKeeper, "score", counting)
    regularize(ws, None, cfg, resume="budget-cut")
    assert scored == [4]  # 0 and 2 were read back, not scored again
    assert [m.step for m in reg.metrics(run_id, name=rule.VAL_FORCE_MAE)] == [0, 2, 4]
    assert rule.CHOICE_UPDATE in reg.final_metrics(run_id)


def test_cli_force_budget_and_show(ws, monkeypatch, capsys) -> None:  # noqa: ANN001
    home = str(ws.home)
    base = ("--home", home, "regularize", "--from", "tiny", "--updates", "2", "--chains", "2",
            "--steps-per-update", "2", "--batch-size", "4", "--warmup", "1")  # fmt: skip
    code, out, _ = cli_main(
        monkeypatch, capsys, *base, "--force-budget", "0.1", "--budget-every", "1",
        "--screen-replicas", "2", "--screen-steps", "10", "--name", "cli-budget",
    )  # fmt: skip
    assert code == 0, out
    code, out, _ = cli_main(monkeypatch, capsys, "--home", home, "show", "cli-budget")
    assert code == 0 and "force budget" in out and "candidates within budget" in out, out
    before = len(_runs(ws))
    for bad in ("0", "11", "nan"):
        one_line_error(cli_main(monkeypatch, capsys, *base, "--force-budget", bad), "--force-budget")
    assert len(_runs(ws)) == before  # nothing registered on refusal


def _runs(ws) -> list:  # noqa: ANN001
    from crmse_cli.registry.store import Registry

    return Registry.open(ws).list_runs()


def test_a_budget_needs_validation_frames(tmp_path: Path) -> None:
    import numpy as np

    from crmse_cli.data.dataset import Dataset
    from crmse_cli.stages.regularize_budget import check_budget

    w = make_workspace(tmp_path)

    data = Dataset.load(w.datasets_dir / "ethanol.npz")
    with pytest.raises(CrmseError, match="validation frames"):
        check_budget(BudgetConfig(force_budget=0.1), data, "01", np.zeros(0, dtype=np.int64), 1)
    with pytest.raises(CrmseError, match="one process"):
        check_budget(BudgetConfig(force_budget=0.1), data, "01", np.arange(3), 2)
    check_budget(BudgetConfig(), data, "01", np.zeros(0, dtype=np.int64), 2)  # no budget: no checks


def test_show_and_report_read_the_choice_from_the_metrics() -> None:
    from types import SimpleNamespace

    from crmse_cli.report.collect import _budget

    config = {"budget": {"force_budget": 0.1, "screen_replicas": 32}}
    finals = {
        rule.CHOICE_UPDATE: (50.0, "1"), rule.CHOICE_LEFT: (2.0, "1"), rule.CHOICE_REL_FORCE: (0.06, "1"),
        rule.N_WITHIN: (3.0, "1"), rule.N_CANDIDATES: (9.0, "1"), rule.PARENT_FALLBACK: (0.0, "1"),
    }  # fmt: skip
    model = SimpleNamespace(kind="regularize", config=config)
    assert _budget(SimpleNamespace(model=model), finals) == (
        "0.1: chose update 50, 2/32 left in the screen, validation force MAE +6.0% vs the MSE model it "
        "descends from; 3 of 9 candidates within budget"
    )
    over = {**finals, rule.OVER_BUDGET: (1.0, "1")}
    assert "over budget" in str(_budget(SimpleNamespace(model=model), over))
    fallback = {**finals, rule.CHOICE_UPDATE: (0.0, "1"), rule.PARENT_FALLBACK: (1.0, "1")}
    assert "the parent (update 0)" in str(_budget(SimpleNamespace(model=model), fallback))
    assert "no candidate after the parent" in str(_budget(SimpleNamespace(model=model), fallback))
    no_budget = SimpleNamespace(kind="regularize", config={"budget": {"force_budget": None}})
    assert _budget(SimpleNamespace(model=no_budget), finals) is None
    assert _budget(SimpleNamespace(model=SimpleNamespace(kind="pretrain", config={})), {}) is None


def test_a_sweep_sets_the_budget_by_field_name() -> None:
    from crmse_cli.stages._grid import regularize_config

    cfg = regularize_config(
        {"force_budget": 0.1, "screen_steps": 50, "n_updates": 7}, lambda_=0.015, seed=2, device="cpu"
    )
    assert cfg.budget == BudgetConfig(force_budget=0.1, screen_steps=50) and cfg.contrastive.n_updates == 7
    assert not regularize_config({}, lambda_=0.015, seed=2, device="cpu").budget.on
    with pytest.raises(CrmseError, match="force_budget"):
        regularize_config({"force_budget": 0.0}, lambda_=0.015, seed=2, device="cpu")


def test_with_an_ema_the_candidates_are_the_averaged_weights(ws) -> None:  # noqa: ANN001
    import dataclasses

    from crmse_cli.model.checkpoint import load_checkpoint
    from crmse_cli.registry.store import Registry
    from crmse_cli.stages.regularize import regularize

    cfg = _config(0.1)
    cfg = dataclasses.replace(cfg, contrastive=dataclasses.replace(cfg.contrastive, ema_decay=0.5, lr=1e-3))
    res = regularize(ws, "tiny", cfg, name="budget-ema")
    tags = {c.tag: c.path for c in Registry.open(ws).checkpoints(res.run_id)}
    candidate, _ = load_checkpoint(tags["candidate-4"])
    last, payload = load_checkpoint(tags["last"])  # update 4: the EMA as the model, the live weights aside
    live = payload["extra"]["train_weights"]
    averaged, raw = candidate.state_dict(), last.state_dict()
    for k, v in averaged.items():
        torch.testing.assert_close(v, raw[k], rtol=0, atol=0, msg=k)
    assert any(not torch.equal(v, live[k]) for k, v in averaged.items())


def test_the_screen_judges_its_last_step(ws) -> None:  # noqa: ANN001
    from types import SimpleNamespace

    from crmse_cli.registry.store import Registry
    from crmse_cli.stages._models import load_dataset, resolve_model
    from crmse_cli.stages._run import RunContext
    from crmse_cli.stages.regularize_budget import BudgetKeeper

    reg = Registry.open(ws)
    handle = resolve_model(reg, "tiny")
    data = load_dataset(reg, handle.dataset)
    run_id = reg.get_run("tiny").id  # any run: the screen writes nothing
    budget = BudgetConfig(force_budget=0.1, screen_replicas=2, screen_steps=13)  # not a multiple of 10
    keeper = BudgetKeeper(
        RunContext(ws, reg, run_id, lock=None), handle, data, handle.extra.val_indices, budget,
        temperature_K=500.0, seed=0, trainer=SimpleNamespace(loop=SimpleNamespace(ema=None)),  # type: ignore[arg-type]
    )  # fmt: skip
    assert 0 <= keeper.screen(handle) <= 2
    assert keeper.monitor.last_step == 13


def test_pick_first_takes_the_earliest_candidate_within_an_ancestors_budget() -> None:
    """An MSE polish of a CRMSE model: force error falls along the path; the reference is the MSE
    model above the CRMSE one; the earliest candidate within budget is the answer (known here)."""
    path = [_c(0, 1.23, 0), _c(10, 1.16, 0), _c(20, 1.12, 0), _c(30, 1.09, 0), _c(40, 1.07, 0)]
    choice = choose(path, 0.10, reference_mae=1.0, pick="first")
    assert choice.chosen.update == 30 and not choice.over_budget and choice.n_within == 2
    assert choice.rel_force == pytest.approx(0.09)
    # The CRMSE model itself (update 0) counts when it is already within budget.
    assert choose(path, 0.25, reference_mae=1.0, pick="first").chosen.update == 0
    # None within: the most accurate candidate, flagged over budget (never the parent silently).
    over = choose(path, 0.05, reference_mae=1.0, pick="first")
    assert over.chosen.update == 40 and over.over_budget and not over.parent_fallback
    # The default pick on the same path is the most stable within budget, then the lower error.
    assert choose(path, 0.10, reference_mae=1.0).chosen.update == 40
    with pytest.raises(CrmseError, match="budget pick"):
        choose(path, 0.1, pick="last")
    with pytest.raises(CrmseError, match="budget_pick|budget-pick"):
        BudgetConfig(force_budget=0.1, budget_pick="last")


def test_a_polish_with_pick_first_is_budgeted_against_the_pretrain_ancestor(ws) -> None:  # noqa: ANN001
    """`regularize --from CRMSE --lambda 0 --chain-source data --force-budget 0.1 --budget-pick first
    --screen-steps 0`: the reference is the pretrain run, the choice the first candidate within."""
    import json

    from crmse_cli.registry.store import Registry
    from crmse_cli.stages._models import load_dataset, resolve_model
    from crmse_cli.stages.regularize import RegularizeConfig, regularize
    from crmse_cli.train.accuracy import frame_errors
    from crmse_cli.train.contrastive import ContrastiveConfig

    regularize(ws, "tiny", _config(None, updates=2), name="crmse-run")
    c = ContrastiveConfig(
        n_chains=2, steps_per_update=2, n_updates=4, batch_size=4, warmup_updates=0, seed=1,
        lambda_=0.0, chain_source="data",
    )  # fmt: skip
    b = BudgetConfig(force_budget=0.1, budget_every=2, screen_steps=0, budget_pick="first")
    cfg = RegularizeConfig(contrastive=c, budget=b, val_every=2, checkpoint_every=1, chains_every=2)
    regularize(ws, "crmse-run", cfg, name="polish")
    reg = Registry.open(ws)
    run = reg.get_run("polish")
    handle = resolve_model(reg, "tiny")
    data = load_dataset(reg, handle.dataset)
    ref = frame_errors(handle.potential, data, handle.extra.val_indices, prefix="val")[
        "val_force_mae"
    ][0]
    finals = reg.final_metrics(run.id)
    assert finals[rule.REFERENCE_FORCE_MAE].value == pytest.approx(ref, rel=1e-6)
    cands = _logged(reg, run.id)
    assert [c.update for c in cands] == [0, 2, 4] and all(c.replicas == 0 and c.left == 0 for c in cands)
    expected = choose(cands, 0.1, reference_mae=ref, pick="first")
    assert finals[rule.CHOICE_UPDATE].value == expected.chosen.update
    record = json.loads(Path(reg.artifacts(run.id, kind="budget")[0].path).read_text())
    assert record["reference_run"] == reg.get_run("tiny").id and record["over_budget"] == expected.over_budget


def test_budget_frames_held_scores_every_held_out_training_frame(ws) -> None:  # noqa: ANN001
    """`--budget-frames held`: candidates are scored on the split's training frames the run does not
    train on (validation frames included), the parent too; the count is recorded and shown."""
    from dataclasses import replace

    import numpy as np

    from crmse_cli.registry.store import Registry
    from crmse_cli.stages._models import load_dataset, resolve_model
    from crmse_cli.stages.regularize import regularize
    from crmse_cli.train.accuracy import frame_errors

    cfg = _config(0.1)
    cfg = replace(cfg, budget=replace(cfg.budget, budget_frames="held"))
    regularize(ws, "tiny", cfg, name="held-run")
    reg = Registry.open(ws)
    run = reg.get_run("held-run")
    handle = resolve_model(reg, "tiny")
    data = load_dataset(reg, handle.dataset)
    extra = handle.extra
    train_part, _ = data.split(handle.split)
    held = np.setdiff1d(np.asarray(train_part), np.asarray(extra.train_indices))
    val = set(np.asarray(extra.val_indices).tolist())
    assert val < set(held.tolist())  # more than the validation frames
    finals = reg.final_metrics(run.id)
    assert finals[rule.N_FRAMES].value == len(held)
    parent = _logged(reg, run.id)[0]
    want = frame_errors(handle.potential, data, held, prefix="val")["val_force_mae"][0]
    assert parent.val_force_mae == pytest.approx(want, rel=1e-6)
    val_only = frame_errors(handle.potential, data, extra.val_indices, prefix="val")["val_force_mae"][0]
    assert parent.val_force_mae != pytest.approx(val_only, rel=1e-6)
    line = rule.budget_summary(run.config, {k: m.value for k, m in finals.items()})
    assert line is not None and f"scored on {len(held)} held-out frames" in line


def test_budget_frames_held_is_refused_when_l_c_trains_on_those_frames(ws) -> None:  # noqa: ANN001
    from dataclasses import replace

    from crmse_cli.registry.store import Registry
    from crmse_cli.stages.regularize import regularize

    cfg = _config(0.1)
    cfg = replace(
        cfg,
        contrastive=replace(cfg.contrastive, positives="split"),
        budget=replace(cfg.budget, budget_frames="held"),
    )
    n_runs = len(Registry.open(ws).list_runs())
    with pytest.raises(CrmseError, match="budget-frames held"):
        regularize(ws, "tiny", cfg, name="held-refused")
    assert len(Registry.open(ws).list_runs()) == n_runs  # refused before the run row exists
