"""`crmse stabilize`: the whole journey in one resumable command, and its verdict block.

A fresh synthetic workspace (tests/synthetic.py) with a tiny pretrained crmse model; tiny screens,
a CRMSE run of a few updates, then the MSE polish the force budget cuts (``--recipe crmse``: the
budget along CRMSE itself). The numbers mean nothing: the tests check that every step is a
registry run, that the verdict says what the runs' metrics say, and that Ctrl-C then a rerun
reuses the finished steps and resumes CRMSE.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
from synthetic import make_workspace, one_line_error, tiny_pretrain

from crmse_cli.errors import CrmseError
from crmse_cli.registry.store import Registry
from crmse_cli.report.verdict import Evidence, diagnosis_line, stability_line, verdict_lines
from crmse_cli.stages.stabilize_config import StabilizeConfig

pytestmark = pytest.mark.slow

TINY = StabilizeConfig(
    replicas=4, steps=40, record_every=10, budget_every=1, screen_replicas=2, screen_steps=20, seed=1,
    polish_updates=3, polish_every=1,
)  # fmt: skip
STEPS = ("before", "before-eval", "crmse", "polish", "after", "after-eval", "diagnose", "compare")


def tiny_regularize() -> Any:
    """CRMSE settings of seconds with the force budget (candidates every update)."""
    from crmse_cli.stages.regularize import RegularizeConfig
    from crmse_cli.train.budget import BudgetConfig
    from crmse_cli.train.contrastive import ContrastiveConfig

    c = ContrastiveConfig(n_chains=2, steps_per_update=2, n_updates=3, batch_size=4, warmup_updates=1, seed=1)
    budget = BudgetConfig(force_budget=0.1, budget_every=1, screen_replicas=2, screen_steps=20)
    return RegularizeConfig(contrastive=c, budget=budget, val_every=1, checkpoint_every=1, chains_every=2)


@pytest.fixture(autouse=True)
def _quiet() -> None:
    os.environ["CRMSE_NO_PROGRESS"] = "1"


def _finals(reg: Registry, run_id: str) -> dict[str, float]:
    return {k: m.value for k, m in reg.final_metrics(run_id).items()}


def rule_candidates(reg: Registry, run_id: str) -> list[Any]:
    """The force budget's scored candidates of a run, from its metric rows."""
    from crmse_cli.train import budget as rule

    names = (rule.VAL_FORCE_MAE, rule.LEFT, rule.REPLICAS)
    return rule.candidates_from_rows(
        {
            n: [(int(m.step), m.value) for m in reg.metrics(run_id, name=n) if m.step is not None]
            for n in names
        }
    )


def test_stabilize_a_crmse_run_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from synthetic import cli_main

    from crmse_cli.stages.stabilize import stabilize
    from crmse_cli.train.budget import choose

    ws = make_workspace(tmp_path / "home")
    tiny_pretrain(ws, name="mine")
    res = stabilize(ws, "mine", config=TINY, regularize=tiny_regularize())
    reg = Registry.open(ws)
    assert set(STEPS) <= set(res.runs) and res.reused == []
    for step in STEPS[:-1]:
        run = reg.get_run(res.runs[step])
        assert run.name == f"mine-{step}" and run.status == "completed"
    model = reg.get_run("mine").id
    assert reg.get_run(res.runs["before"]).parent == model
    assert reg.get_run(res.runs["crmse"]).parent == model
    # The recipe: CRMSE without candidates, then the polish from it, budgeted on held-out frames.
    crmse, polish = reg.get_run(res.runs["crmse"]), reg.get_run(res.runs["polish"])
    assert crmse.config["budget"]["force_budget"] is None and polish.parent == crmse.id
    assert polish.config["lambda"] == 0.0 and polish.config["contrastive"]["n_updates"] == 3
    assert polish.config["budget"] | {"force_budget": 0.1, "budget_pick": "first", "budget_frames": "held",
                                      "screen_steps": 0} == polish.config["budget"]  # fmt: skip
    assert reg.get_run(res.runs["after"]).parent == polish.id  # the polished model is screened
    assert reg.get_run(res.runs["diagnose"]).parent == polish.id
    assert res.report is not None and res.report.is_file()
    # The choice is the earliest candidate within the budget of the original model's force error.
    cands = rule_candidates(reg, polish.id)
    budget = _finals(reg, polish.id)
    ref = budget["budget_reference_val_force_mae"]
    expected = choose(cands, 0.1, reference_mae=ref, pick="first")
    assert [c.update for c in cands] == [0, 1, 2, 3]
    assert budget["budget_choice_update"] == expected.chosen.update

    # The verdict block is the pure function of the stored metrics, and says what they say.
    before, after = _finals(reg, res.runs["before"]), _finals(reg, res.runs["after"])
    ev_b, ev_a = _finals(reg, res.runs["before-eval"]), _finals(reg, res.runs["after-eval"])
    counts = f"{int(before['n_left'])}/4 -> {int(after['n_left'])}/4"
    assert counts in res.verdict[0]
    mae = 100 * (ev_a["test_force_mae"] / ev_b["test_force_mae"] - 1)
    errors = next(line for line in res.verdict if line.startswith("test force MAE"))
    assert errors.startswith(f"test force MAE {mae:+.1f}% (RMSE ")
    assert "kept the original model" not in " ".join(res.verdict)  # update 0 is CRMSE's model
    pick = next(line for line in res.verdict if line.startswith("MSE polish: "))
    assert res.verdict.index(pick) == 1  # right after the replicas out
    assert f"update {expected.chosen.update}" in pick and "+10% force budget" in pick
    assert pick.endswith("OVER budget" if expected.over_budget else "within budget")
    assert res.verdict[-1] == f"stabilized checkpoint: {res.model}"
    assert res.model is not None and res.model.is_file()
    assert res.model == Path(next(c.path for c in reg.checkpoints(polish.id) if c.tag == "final"))
    assert res.verdict[:-1] == verdict_lines(
        Evidence(int(before["n_left"]), 4, ev_b),
        Evidence(int(after["n_left"]), 4, ev_a),
        diagnosis=_finals(reg, res.runs["diagnose"]),
        budget=budget,
        force_budget=0.1,
    )
    # `crmse show` displays the polish's choice.
    code, out, err = cli_main(monkeypatch, capsys, "--home", str(tmp_path / "home"), "show", "mine-polish")
    assert code == 0, err
    assert f"chose update {expected.chosen.update}, no screen" in out or (
        expected.chosen.update == 0 and "chose the parent (update 0), no screen" in out
    )

    # A rerun repeats nothing.
    again = stabilize(ws, "mine", config=TINY, regularize=tiny_regularize())
    assert again.runs == res.runs and set(again.reused) == set(STEPS)


def test_ctrl_c_in_crmse_then_rerun_continues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crmse_cli.stages.stabilize import stabilize
    from crmse_cli.train import contrastive

    ws = make_workspace(tmp_path / "home")
    tiny_pretrain(ws, name="mine")
    real_step = contrastive.ContrastiveTrainer.step
    calls = {"n": 0}

    def interrupting_step(self: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(contrastive.ContrastiveTrainer, "step", interrupting_step)
    with pytest.raises(KeyboardInterrupt) as stopped:
        stabilize(ws, "mine", config=TINY, regularize=tiny_regularize())
    assert "run the same `crmse stabilize` command again" in stopped.value.crmse_message  # type: ignore[attr-defined]
    monkeypatch.setattr(contrastive.ContrastiveTrainer, "step", real_step)
    reg = Registry.open(ws)
    cut = reg.get_run("mine-crmse")
    assert cut.status == "interrupted"
    first = {s: reg.get_run(f"mine-{s}").id for s in ("before", "before-eval")}
    res = stabilize(ws, "mine", config=TINY, regularize=tiny_regularize())
    assert {s: res.runs[s] for s in first} == first and {"before", "before-eval"} <= set(res.reused)
    assert res.runs["crmse"] == cut.id and reg.get_run(cut.id).status == "completed"  # resumed, not redone
    assert [r.name for r in reg.list_runs(kind="sample")].count("mine-before") == 1
    assert not [r for r in reg.list_runs() if (r.name or "").startswith("mine-crmse~")]


def test_refusals_name_the_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from synthetic import cli_main

    from crmse_cli.stages.stabilize import stabilize

    ws = make_workspace(tmp_path / "home")
    tiny_pretrain(ws, name="mine")
    with pytest.raises(CrmseError, match="comes with its dataset"):
        stabilize(ws, "mine", data="other", config=TINY)
    xyz = tmp_path / "ethanol.xyz"
    xyz.write_text("not used\n")
    model = tmp_path / "m.model"
    model.write_bytes(b"pickle")
    home = str(tmp_path / "home")
    # A dataset named like the file but holding other frames: one line naming --dataset-name.
    result = cli_main(monkeypatch, capsys, "--home", home, "stabilize", str(model), "--data", str(xyz),
                      "--trust-code")  # fmt: skip
    one_line_error(result, "ethanol", "--dataset-name")
    # Without --trust-code a pickle is refused before anything is registered.
    result = cli_main(monkeypatch, capsys, "--home", home, "stabilize", str(model), "--data", str(xyz))
    one_line_error(result, "--trust-code")
    assert [r.name for r in Registry.open(ws).list_runs()] == ["mine"]


def test_verdict_lines_say_plainly_when_it_did_not_help() -> None:
    nothing = stability_line(Evidence(0, 64), Evidence(0, 64))
    assert nothing.startswith("no replica left the basin before (0/64 -> 0/64): nothing to repair")
    worse = stability_line(Evidence(2, 64), Evidence(5, 64))
    assert "2/64 -> 5/64" in worse and worse.endswith("not more stable")
    better = stability_line(Evidence(16, 64), Evidence(2, 64))
    assert better.startswith("left the basin: 16/64 -> 2/64 (Fisher p = ") and "not" not in better
    errs = {"test_force_mae": 1.0, "test_force_rmse": 2.0, "test_energy_mae": 0.5, "test_energy_rmse": 1.0}
    after = {
        "test_force_mae": 1.04,
        "test_force_rmse": 2.04,
        "test_energy_mae": 0.45,
        "test_energy_rmse": 1.0,
    }
    fallback = {"budget_choice_update": 0.0, "budget_parent_fallback": 1.0}
    lines = verdict_lines(Evidence(16, 64, errs), Evidence(2, 64, after), budget=fallback, wrote="x.model")
    assert lines[1] == "no candidate within the force budget: kept the original model"
    assert lines[2] == "test force MAE +4.0% (RMSE +2.0%); energy MAE -10.0% (RMSE +0.0%)"
    assert lines[-1] == "wrote x.model"
    repair = diagnosis_line({"hessian_ratio_soft": 1.0, "hessian_ratio_stiff": 1.0, "collapse_lift_kT": 9.2})
    assert repair is not None and repair.startswith("repair, not softening (torsions 1.00, stiff modes 1.00")
    assert "collapsed frames lifted 9 kT" in repair
    soft = diagnosis_line({"hessian_ratio_soft": 0.5, "collapse_lift_kT": math.nan})
    assert soft is not None and soft.startswith("softening, not repair (torsions 0.50")


def test_stabilize_a_mace_model_exports_a_mace_model(tmp_path: Path) -> None:
    pytest.importorskip("mace", reason="mace-torch is not installed (the optional 'mace' extra)")
    import numpy as np
    import torch
    from test_mace import calculator_results, ethanol_frames, small_mace, write_training_xyz

    from crmse_cli.model.checkpoint import load_checkpoint
    from crmse_cli.model.forces import energy_and_forces
    from crmse_cli.stages._models import run_checkpoint
    from crmse_cli.stages.stabilize import HELDOUT, stabilize
    from crmse_cli.units import KCAL_PER_MOL_PER_EV
    from crmse_cli.workspace import Workspace

    model = small_mace()
    model_path, xyz, test_xyz = tmp_path / "my.model", tmp_path / "train.xyz", tmp_path / "held.xyz"
    torch.save(model, model_path)
    write_training_xyz(xyz, model)
    write_training_xyz(test_xyz, model, n=6)
    ws = Workspace.resolve(tmp_path / "home", trust_code=True)  # my.model is a pickle: vouch for it
    keys = {"energy_key": "REF_energy", "forces_key": "REF_forces"}
    res = stabilize(
        ws, str(model_path), data=str(xyz), test=test_xyz, config=TINY, regularize=tiny_regularize(), **keys
    )
    reg = Registry.open(ws)
    imported = reg.get_run(res.runs["import"])
    assert imported.name == "my-import" and imported.config["architecture"] == "mace"
    assert imported.config["val_fraction"] == 0.1  # the force budget's validation frames
    assert reg.get_run(res.runs["crmse"]).parent == imported.id
    assert res.model == tmp_path / "my-stable.model" and res.verdict[-1] == f"wrote {res.model}"
    # Held-out errors: the --test file's frames, on both evaluate runs, named in the verdict.
    for step in ("before-eval", "after-eval"):
        assert f"{HELDOUT}_force_mae" in _finals(reg, res.runs[step])
    assert any(line.startswith("held-out (held.xyz) force MAE") for line in res.verdict)

    # The exported file loads in mace-torch and gives the stabilized model's energies.
    assert reg.get_run(res.runs["polish"]).parent == res.runs["crmse"]  # held-out: the import's val frames
    stable, _ = load_checkpoint(run_checkpoint(reg, reg.get_run(res.runs["polish"])), trust_code=True)
    species, pos = ethanol_frames(3, seed=9)
    want = energy_and_forces(stable, torch.as_tensor(pos), torch.as_tensor(species))[0].detach().numpy()
    got, _ = calculator_results(res.model, species, pos, "float64")
    np.testing.assert_allclose(got * KCAL_PER_MOL_PER_EV, want, rtol=0, atol=1e-6)

    # A rerun reuses the import and every finished step, without --trust-code.
    plain = Workspace.resolve(tmp_path / "home")
    again = stabilize(plain, str(model_path), data=str(xyz), test=test_xyz, config=TINY, **keys)
    assert again.runs == res.runs and "import" in again.reused


def test_the_command_prints_the_verdict_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from synthetic import cli_main

    ws = make_workspace(tmp_path / "home")
    tiny_pretrain(ws, name="mine")
    sizes = ["--replicas", "2", "--steps", "20", "--updates", "1", "--budget-every", "1",
             "--screen-replicas", "2", "--screen-steps", "10", "--temperature-K", "400"]  # fmt: skip
    # --recipe crmse: the behaviour before the polish, the budget's candidates along CRMSE.
    home = str(tmp_path / "home")
    code, out, err = cli_main(
        monkeypatch, capsys, "--home", home, "stabilize", "mine", *sizes, "--recipe", "crmse"
    )
    assert code == 0, err
    reg = Registry.open(ws)
    crmse = reg.get_run("mine-crmse")
    assert crmse.config["budget"]["force_budget"] == 0.1  # the default force budget
    assert crmse.config["budget"]["screen_temperature_K"] == 400.0
    assert not [r for r in reg.list_runs() if (r.name or "").startswith("mine-polish")]
    assert reg.get_run("mine-after").parent == crmse.id
    # The default recipe does not polish a CRMSE step that kept candidates: one line naming --name.
    again = cli_main(monkeypatch, capsys, "--home", home, "stabilize", "mine", *sizes)
    one_line_error(again, "mine-crmse", "--name")
    assert reg.get_run("mine-before").config["temperature_K"] == 400.0
    block = out[out.index("verdict (mine):") :].splitlines()[1:]
    assert block[0].strip().startswith(("left the basin: ", "no replica left the basin before"))
    assert block[-1].strip() == f"stabilized checkpoint: {ws.run_dir(crmse.id) / 'checkpoints' / 'final.pt'}"
    # An option out of range is refused before any run exists.
    home = str(tmp_path / "home")
    bad = cli_main(
        monkeypatch, capsys, "--home", home, "stabilize", "mine", "--force-budget", "0", "--name", "other"
    )
    one_line_error(bad, "--force-budget", "(0, 10]")
    assert not [r for r in reg.list_runs() if (r.name or "").startswith("other-")]
    bad = cli_main(monkeypatch, capsys, "--home", home, "stabilize", "mine", "--recipe", "polish")
    assert bad[0] == 2 and "crmse+polish" in bad[2]  # a usage error naming the recipes
