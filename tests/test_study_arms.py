"""Issue 29: the regularize options of the study arms (docs/method.md, "Study arms").

The schedule of lambda on scripted sequences; the null arm's L_C on a toy; the larger positive
set; fresh and inherited Adam; the EMA and its exact resume; the MSE polish of a regularize run;
the options through the CLI and the settings of old runs.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
from synthetic import cli_main, make_workspace, one_line_error, regularize_cut_at, tiny_pretrain
from test_contrastive import T_K, ToyModel, target_frames

from crmse_cli.errors import CrmseError
from crmse_cli.model.checkpoint import load_checkpoint
from crmse_cli.registry.store import Registry
from crmse_cli.sampling import chains as chains_module
from crmse_cli.train.contrastive import ContrastiveConfig, ContrastiveTrainer
from crmse_cli.train.lambda_schedule import LambdaSchedule, under_budget
from crmse_cli.workspace import Workspace

# -- the lambda schedule, pure Python ----------------------------------------------------------


def test_lambda_decays_linearly_once_the_outside_share_stayed_low() -> None:
    s = LambdaSchedule(decay_after=3, decay_threshold=0.02, decay_updates=4)
    factors = []
    for share in [0.5, 0.01, 0.0, 0.3, 0.02, 0.0, 0.01, 0.9, 0.9, 0.9, 0.9, 0.9]:
        factors.append(s.factor)  # the factor of the update whose outside share is `share`
        s.observe_outside(share)
    # A high share (0.3) restarts the count; 0.02 is low (<= threshold); three lows in a row
    # start the decay: 1 - k/4 for the next updates, then 0, and it stays down (latched).
    assert factors == [1.0] * 7 + [0.75, 0.5, 0.25, 0.0, 0.0]
    assert s.factor == 0.0
    nan = LambdaSchedule(decay_after=1)
    nan.observe_outside(math.nan)  # no support test: never counted as repaired
    assert nan.factor == 1.0
    off = LambdaSchedule()  # decay_after = 0: today's fixed lambda
    for _ in range(10):
        off.observe_outside(0.0)
    assert off.factor == 1.0


def test_budget_control_raises_lambda_under_budget_and_lowers_it_over() -> None:
    parent = 2.0
    s = LambdaSchedule(control="budget", up=1.5, down=2.0, bound=4.0)
    seen = []
    for val in [2.1, 2.2, 2.19, 2.5, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 9.0, 9.0, 9.0, 9.0, 9.0]:
        s.observe_validation(under_budget(val, parent, 0.10))  # budget: 2.2
        seen.append(s.factor)
    assert seen[:5] == pytest.approx([1.5, 2.25, 3.375, 1.6875, 0.84375])  # 2.2 is within
    assert max(seen) == 4.0 and min(seen) == 0.25  # bounded to [1/4, 4]
    assert seen[9] == 4.0 and seen[-1] == 0.25
    fixed = LambdaSchedule()
    fixed.observe_validation(False)
    assert fixed.factor == 1.0
    again = LambdaSchedule(control="budget", up=1.5, down=2.0, bound=4.0)
    again.load_state_dict(s.state_dict())
    assert again == s


# -- the trainer on a toy ------------------------------------------------------------------------


def _toy(**kw: Any) -> ContrastiveTrainer:
    x, e, f = target_frames(100, seed=1)
    model = ToyModel(depth=12.0)
    settings: dict[str, Any] = dict(
        lambda_=1.0, lambda_units="kcal", eta_A2=0.02, steps_per_update=20, n_chains=16, n_updates=2,
        temperature_K=T_K, lr=1e-9, warmup_updates=0, batch_size=16, seed=0,
    )  # fmt: skip
    settings.update(kw)
    positives = settings.pop("positive_positions", None)
    cfg = ContrastiveConfig(**settings)
    return ContrastiveTrainer(model, list(model.parameters()), x, e, f, cfg, positive_positions=positives)


def _mean_and_se(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a)))


def test_the_null_arm_has_zero_mean_contrastive_loss_and_runs_no_sampler(monkeypatch) -> None:
    model_arm = _toy(n_updates=60)
    model_lc = [r.loss_c for r in model_arm.updates()]

    def no_sampling(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the null arm ran a sampler step")

    monkeypatch.setattr(chains_module, "build_sampler", no_sampling)  # every chain move builds one
    null = _toy(chain_source="data", n_updates=400)
    null_lc = [r.loss_c for r in null.updates()]
    mean, se = _mean_and_se(null_lc)
    assert abs(mean) < 4 * se, f"null arm L_C {mean:.4f} +- {se:.4f}"
    assert se > 0  # fresh draws every update: L_C is noise, not a constant
    # The model's chains fall into the spurious well: their L_C is far from zero.
    m_mean, m_se = _mean_and_se(model_lc)
    assert m_mean > 4 * m_se and m_mean > 5 * abs(mean)


def test_positives_split_draws_the_data_term_from_the_larger_set() -> None:
    far = torch.full((40, 1, 3), 100.0, dtype=torch.float64)  # unlabelled positions, easy to tell apart
    seen: list[torch.Tensor] = []
    trainer = _toy(positive_positions=far)
    energy_fn = trainer.energy_fn
    trainer.energy_fn = lambda pos: (seen.append(pos.detach().clone()), energy_fn(pos))[1]
    trainer.step()
    from_pool = [p for p in seen if bool((p == 100.0).all())]
    assert len(from_pool) == 1 and from_pool[0].shape == (16, 1, 3)  # one data-term batch of 16
    labelled = _toy()
    seen.clear()
    energy_fn = labelled.energy_fn
    labelled.energy_fn = lambda pos: (seen.append(pos.detach().clone()), energy_fn(pos))[1]
    labelled.step()
    assert not any(bool((p == 100.0).all()) for p in seen)


def test_lambda_eff_follows_the_decay_on_the_toy(monkeypatch) -> None:
    t = _toy(chain_source="data", n_updates=6, lambda_=2.0, lambda_decay_after=2, lambda_decay_updates=2)
    # One atom has no pairs to test; as for fresh training frames, no chain is outside the support.
    monkeypatch.setattr(t.walkers, "geometry", lambda: (1.0, 0.0))
    assert [r.lambda_eff for r in t.updates()] == [2.0, 2.0, 1.0, 0.0, 0.0, 0.0]


# -- the stage ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, str]:
    ws = make_workspace(tmp_path_factory.mktemp("arms") / "home")
    return ws, tiny_pretrain(ws)


def _cfg(updates: int = 3, **kw: Any) -> Any:
    from crmse_cli.stages.regularize import RegularizeConfig

    c = ContrastiveConfig(
        n_chains=2, steps_per_update=2, n_updates=updates, batch_size=4, warmup_updates=1, lr=1e-3, seed=3,
        **kw,
    )  # fmt: skip
    return RegularizeConfig(contrastive=c, val_every=1, checkpoint_every=1, chains_every=2)


def test_fresh_adam_starts_from_zero_moments_and_inherit_from_the_parents(tiny) -> None:  # noqa: ANN001
    from crmse_cli.stages._models import load_dataset, resolve_model
    from crmse_cli.stages.regularize import _build_trainer, _frames
    from crmse_cli.stages.regularize_state import pretrain_state

    ws, model = tiny
    reg = Registry.open(ws)
    moments = {}
    for mode in ("inherit", "fresh"):
        handle = resolve_model(reg, model)
        data = load_dataset(reg, handle.dataset)
        start = pretrain_state(reg, handle)
        assert start is not None
        cfg = ContrastiveConfig(n_chains=2, steps_per_update=1, optimizer_init=mode)
        trainer = _build_trainer(handle, data, _frames(handle, data)[0], cfg, start)
        moments[mode] = trainer.optimizer.state_dict()["state"]
    parent = start.optimizer["state"]
    assert moments["fresh"] == {}  # Adam's moments are zero until the first step
    assert moments["inherit"].keys() == parent.keys() and len(parent) > 0
    for k, s in parent.items():
        torch.testing.assert_close(moments["inherit"][k]["exp_avg_sq"], s["exp_avg_sq"], rtol=0, atol=0)
        torch.testing.assert_close(moments["inherit"][k]["exp_avg"], s["exp_avg"], rtol=0, atol=0)


def test_ema_weights_are_saved_and_resume_is_exact(tiny, monkeypatch) -> None:  # noqa: ANN001
    from crmse_cli.stages.regularize import regularize

    ws, model = tiny
    cfg = _cfg(4, ema_decay=0.5)
    full = regularize(ws, model, cfg, name="ema-full")
    pot, payload = load_checkpoint(full.checkpoint)
    live = payload["extra"]["train_weights"]
    ema = pot.state_dict()
    assert any(not torch.equal(ema[k], live[k]) for k in live), "EMA weights should differ from the raw ones"
    regularize_cut_at(ws, monkeypatch, model, cfg, name="ema-cut", update=3)
    resumed = regularize(ws, None, cfg, resume="ema-cut")
    pot2, payload2 = load_checkpoint(resumed.checkpoint)
    for k, v in pot2.state_dict().items():
        torch.testing.assert_close(v, ema[k], rtol=0, atol=0)
    for k, v in payload2["extra"]["train_weights"].items():
        torch.testing.assert_close(v, live[k], rtol=0, atol=0)
    a, b = payload["extra"]["trainer"]["ema"], payload2["extra"]["trainer"]["ema"]
    assert a["updates"] == b["updates"] == 4
    reg = Registry.open(ws)
    rows = {m.step: m.value for m in reg.metrics(reg.get_run("ema-full").id, name="lambda_eff")}
    assert rows == {1: 0.015, 2: 0.015, 3: 0.015, 4: 0.015}
    assert reg.metrics(reg.get_run("ema-full").id, name="lambda_eff")[0].unit == "eV"


def test_mse_polish_continues_a_regularize_run(tiny) -> None:  # noqa: ANN001
    from crmse_cli.stages.regularize import regularize

    ws, model = tiny
    reg = Registry.open(ws)
    crmse = regularize(ws, model, _cfg(2, ema_decay=0.5, energy_weight=0.7), name="to-polish")
    polish = regularize(ws, "to-polish", _cfg(3, lambda_=0.0), name="polish")
    run = reg.get_run("polish")
    assert run.parent == reg.get_run("to-polish").id and run.status == "completed"
    _, p0 = load_checkpoint(crmse.checkpoint)
    _, p1 = load_checkpoint(polish.checkpoint)
    steps0 = {int(s["step"]) for s in p0["extra"]["trainer"]["optimizer"]["state"].values()}
    steps1 = {int(s["step"]) for s in p1["extra"]["trainer"]["optimizer"]["state"].values()}
    assert steps1 == {s + 3 for s in steps0}  # the CRMSE run's Adam moments, continued
    assert run.config["n_train"] == reg.get_run("to-polish").config["n_train"]
    assert all(m.value == 0.0 for m in reg.metrics(run.id, name="lambda_eff"))
    assert run.config["contrastive"]["energy_weight"] == 0.7  # the loss it continues
    # It starts from the CRMSE run's raw weights (not its EMA) and its Adam state.
    from crmse_cli.stages._models import resolve_model
    from crmse_cli.stages.regularize_state import pretrain_state

    start = pretrain_state(reg, resolve_model(reg, "to-polish"))
    assert start is not None and start.checkpoint == str(crmse.checkpoint)
    for k, v in p0["extra"]["train_weights"].items():
        torch.testing.assert_close(start.weights[k], v, rtol=0, atol=0)


def test_positive_pool_is_the_training_part_less_validation(tiny) -> None:  # noqa: ANN001
    from crmse_cli.stages._models import load_dataset, resolve_model
    from crmse_cli.stages.regularize import _frames
    from crmse_cli.stages.regularize_arms import positive_rows

    ws, model = tiny
    reg = Registry.open(ws)
    handle = resolve_model(reg, model)
    data = load_dataset(reg, handle.dataset)
    train, val = _frames(handle, data)
    assert positive_rows(data, handle.split, train, val, "labelled") is None
    pool = positive_rows(data, handle.split, train, val, "split")
    assert pool is not None
    assert set(train) < set(pool) and not set(val) & set(pool)
    assert set(pool) | set(val) == set(data.split(handle.split)[0])


def test_budget_control_without_a_budget_is_refused_before_a_run_exists(tiny) -> None:  # noqa: ANN001
    from crmse_cli.stages.regularize import regularize

    ws, model = tiny
    reg = Registry.open(ws)
    before = len(reg.list_runs())
    with pytest.raises(CrmseError, match="--force-budget"):
        regularize(ws, model, _cfg(1, lambda_control="budget"))
    assert len(reg.list_runs()) == before


def test_budget_control_steers_lambda_by_the_validation_force_error(tiny) -> None:  # noqa: ANN001
    from crmse_cli.stages.regularize import regularize
    from crmse_cli.train.budget import BudgetConfig

    ws, model = tiny
    cfg = _cfg(4, lambda_control="budget", lambda_control_up=1.5, lambda_control_down=4.0)
    budget = BudgetConfig(force_budget=0.1, budget_every=100, screen_replicas=1, screen_steps=2)
    regularize(ws, model, replace(cfg, budget=budget), name="steered")
    reg = Registry.open(ws)
    run = reg.get_run("steered").id
    parent = next(m.value for m in reg.metrics(run, name="budget_val_force_mae") if m.step == 0)
    val = {m.step: m.value for m in reg.metrics(run, name="val_force_mae")}
    lam = {m.step: m.value for m in reg.metrics(run, name="lambda_eff")}
    expected = 0.015
    for update in (1, 2, 3, 4):
        assert lam[update] == pytest.approx(expected), update
        expected *= 1.5 if val[update] <= 1.1 * parent else 0.25  # validated after the update


def test_the_arm_options_reach_the_run_and_bad_ones_are_one_line(tiny, monkeypatch, capsys) -> None:  # noqa: ANN001
    ws, model = tiny
    monkeypatch.setenv("CRMSE_HOME", str(ws.home))
    common = ["regularize", "--from", model, "--updates", "1", "--chains", "2", "--steps-per-update", "1",
              "--batch-size", "4"]  # fmt: skip
    code, _, err = cli_main(
        monkeypatch, capsys, *common, "--name", "cli-arms", "--chain-source", "data", "--positives", "split",
        "--optimizer-init", "fresh", "--ema-decay", "0.9", "--lambda-decay-after", "5",
        "--lambda-decay-threshold", "0.1", "--lambda-decay-updates", "7",
    )  # fmt: skip
    assert code == 0, err
    c = Registry.open(ws).get_run("cli-arms").config["contrastive"]
    arms = (c["chain_source"], c["positives"], c["optimizer_init"], c["ema_decay"])
    assert arms == ("data", "split", "fresh", 0.9)
    assert (c["lambda_decay_after"], c["lambda_decay_threshold"], c["lambda_decay_updates"]) == (5, 0.1, 7)
    assert c["lambda_control"] == "fixed"
    code, out, _ = cli_main(monkeypatch, capsys, "show", "cli-arms")  # show lists the config whole
    assert code == 0 and "contrastive.chain_source" in out and "contrastive.lambda_decay_after" in out
    code, _, err = cli_main(monkeypatch, capsys, *common, "--chain-source", "chains")  # a usage error
    assert code == 2 and "'chains' is not one of model, data" in err
    one_line_error(cli_main(monkeypatch, capsys, *common, "--ema-decay", "1"), "--ema-decay")


def test_runs_without_the_arm_settings_read_as_before() -> None:
    from crmse_cli.stages.regularize import _config_from_run

    old = {"contrastive": {"lambda_": 0.015, "lambda_units": "eV", "init": "raw", "grad_clip": 100.0}}
    cfg = _config_from_run(old, device="cpu").contrastive
    assert cfg == replace(ContrastiveConfig(), lambda_=0.015)
    arms = (cfg.chain_source, cfg.positives, cfg.optimizer_init, cfg.ema_decay)
    assert arms == ("model", "labelled", "inherit", 0.0)
    assert (cfg.lambda_decay_after, cfg.lambda_control) == (0, "fixed")
