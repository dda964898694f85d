"""`crmse pretrain` as a registry run: metrics, checkpoints, Ctrl-C, resume, and the command."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("sqlalchemy")

from crmse_cli.data.dataset import Dataset  # noqa: E402
from crmse_cli.errors import CrmseError, NotFoundError  # noqa: E402
from crmse_cli.fileio import sha256_file  # noqa: E402
from crmse_cli.model import ModelConfig  # noqa: E402
from crmse_cli.registry.store import Registry  # noqa: E402
from crmse_cli.stages.pretrain import pretrain  # noqa: E402
from crmse_cli.train.pretrain import PretrainConfig, PretrainTrainer  # noqa: E402
from crmse_cli.workspace import Workspace  # noqa: E402

CFG = PretrainConfig(
    model=ModelConfig(features=16, layers=1, n_rbf=8),
    n_train=40,
    val_fraction=0.2,
    batch_size=16,
    lr=3e-3,
    max_epochs=4,
    max_minutes=None,
)
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def ws(tmp_path: Path, ethanol_npz: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A workspace with a small registered ethanol dataset (60 frames: 45 train, 15 test)."""
    monkeypatch.delenv("CRMSE_DB_URL", raising=False)
    monkeypatch.setenv("CRMSE_NO_PROGRESS", "1")
    ws = Workspace(tmp_path / "home").ensure()
    with np.load(ethanol_npz) as z:
        data = Dataset(
            name="ethanol",
            species=z["nuclear_charges"].astype(np.int64),
            positions=z["coords"][:60],
            energies=z["energies"][:60],
            forces=z["forces"][:60],
            frame_ids=np.arange(60),
            splits={"01": {"train": np.arange(45), "test": np.arange(45, 60)}},
        )
    path = ws.datasets_dir / "ethanol.npz"
    data.save(path)
    Registry.open(ws).add_dataset(
        name="ethanol", source="test", sha256=sha256_file(path), path=str(path), n_frames=60, n_atoms=9,
        species=data.species.tolist(), units={"energy": "kcal/mol"}, splits={"01": {"train": 45, "test": 15}},
        meta={},
    )  # fmt: skip
    return ws


def test_a_run_records_metrics_checkpoints_and_config(ws: Workspace) -> None:
    res = pretrain(ws, dataset="ethanol", split=1, config=CFG, name="tiny", progress=False)
    reg = Registry.open(ws)
    run = reg.get_run("tiny")
    assert (run.id, run.kind, run.status, run.dataset) == (res.run_id, "pretrain", "completed", "ethanol")
    assert run.config["dataset"] == "ethanol" and run.config["split"] == "01"
    assert run.config["n_train"] == 40 and run.config["model"]["features"] == 16
    assert (res.epochs, res.n_train, res.n_val, res.stop_reason) == (4, 32, 8, "max_epochs")
    for name, unit in (("train_loss", "1"), ("val_loss", "1"), ("val_energy_mae", "kcal/mol"),
                       ("val_force_mae", "kcal/mol/A"), ("lr", "1")):  # fmt: skip
        rows = reg.metrics(run.id, name=name)
        assert [m.step for m in rows] == [1, 2, 3, 4] and {m.unit for m in rows} == {unit}
    final = reg.final_metrics(run.id)
    assert final["test_energy_mae"].unit == "kcal/mol" and final["test_force_rmse_meV"].unit == "meV/A"
    assert final["test_force_mae"].split == "test"
    assert final["test_energy_mae"].value == pytest.approx(res.metrics["test_energy_mae"][0])
    tags = {c.tag: c for c in reg.checkpoints(run.id)}
    assert set(tags) == {"best", "last"}
    for c in tags.values():
        assert Path(c.path).is_file() and sha256_file(c.path) == c.sha256
    assert tags["last"].step == 4 and Path(tags["best"].path) == res.checkpoint
    assert tags["best"].step == res.best_epoch


def test_ctrl_c_keeps_the_last_checkpoint_and_resume_continues(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = pretrain(ws, dataset="ethanol", config=CFG, progress=False)
    original = PretrainTrainer.run_epoch

    def interrupted(self: PretrainTrainer) -> Any:
        if self.epoch == 2:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(PretrainTrainer, "run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pretrain(ws, dataset="ethanol", config=CFG, name="cut", progress=False)
    reg = Registry.open(ws)
    run = reg.get_run("cut")
    assert run.status == "interrupted"
    last = [c for c in reg.checkpoints(run.id) if c.tag == "last"]
    assert last and last[-1].step == 2
    monkeypatch.setattr(PretrainTrainer, "run_epoch", original)

    res = pretrain(ws, resume="cut", progress=False)
    assert res.run_id == run.id and res.epochs == 4
    assert reg.get_run(run.id).status == "completed"
    assert [m.step for m in reg.metrics(run.id, name="val_loss")] == [1, 2, 3, 4]
    # Same seed, same config: the resumed run ends with the uninterrupted run's weights.
    a = torch.load(ws.run_dir(straight.run_id) / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(ws.run_dir(run.id) / "checkpoints" / "last.pt", weights_only=True)
    for k, v in a["state_dict"].items():
        assert torch.equal(b["state_dict"][k], v), k
    assert res.metrics["test_force_mae"][0] == pytest.approx(straight.metrics["test_force_mae"][0])


def test_resume_extends_the_budget_and_refuses_model_changes(ws: Workspace) -> None:
    first = pretrain(ws, dataset="ethanol", config=dataclasses.replace(CFG, max_epochs=2), progress=False)
    more = pretrain(ws, resume=first.run_id, overrides={"max_epochs": 3}, progress=False)
    assert more.epochs == 3
    with pytest.raises(CrmseError, match="n_train"):
        pretrain(ws, resume=first.run_id, overrides={"n_train": 20}, progress=False)
    with pytest.raises(CrmseError, match="lr"):
        pretrain(ws, resume=first.run_id, config=dataclasses.replace(CFG, lr=1.0), progress=False)


def test_user_errors(ws: Workspace) -> None:
    with pytest.raises(NotFoundError, match="fetch"):
        pretrain(ws, dataset="aspirin", config=CFG, progress=False)
    with pytest.raises(CrmseError, match="--dataset"):
        pretrain(ws, config=CFG, progress=False)
    with pytest.raises(CrmseError, match="n_train"):
        pretrain(ws, dataset="ethanol", config=dataclasses.replace(CFG, n_train=500), progress=False)
    with pytest.raises(NotFoundError):
        pretrain(ws, resume="nosuchrun", progress=False)
    assert Registry.open(ws).list_runs() == []  # refused before any run was created


def test_the_command(ws: Workspace) -> None:
    from typer.testing import CliRunner

    from crmse_cli.cli.app import _register, app

    _register()  # every command, as main() does: registering one alone would hide the others
    args = ["--home", str(ws.home), "--json", "pretrain", "--dataset", "ethanol", "--config",
            str(EXAMPLES / "quick.toml"), "--n-train", "30", "--n-val", "10", "--max-epochs", "1",
            "--seed", "3", "--dtype", "float64", "--name", "cli-run"]  # fmt: skip
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["epochs"] == 1 and (result["n_train"], result["n_val"]) == (30, 10)
    assert set(result["metrics"]) >= {"test_energy_mae", "test_force_mae_meV"}
    run = Registry.open(ws).get_run("cli-run")
    assert run.config["seed"] == 3 and run.config["model"]["dtype"] == "float64"
    assert run.config["model"]["features"] == 32  # from examples/quick.toml
    resumed = CliRunner().invoke(
        app, ["--home", str(ws.home), "--json", "pretrain", "--resume", "cli-run", "--max-epochs", "2"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["epochs"] == 2


def test_resume_of_a_run_without_a_dataset_says_so(ws: Workspace) -> None:
    run = Registry.open(ws).create_run(kind="pretrain", name="bare", config={}, seed=None)
    with pytest.raises(CrmseError, match="records no dataset"):
        pretrain(ws, resume=run.id, progress=False)


def test_plan_writes_nothing_and_a_queued_run_executes_the_spec_in_its_context(ws: Workspace) -> None:
    """pretrain as plan + execute: a sweep (or stabilize) can start a queued pretrain run."""
    from crmse_cli.runlock import RunBusyError
    from crmse_cli.stages import pretrain as stage
    from crmse_cli.stages._run import RunContext, own_run

    reg = Registry.open(ws)
    queued = reg.create_run(kind="pretrain", name="queued", config={"sweep": {"name": "s"}}, seed=None)
    reg.set_status(queued.id, "queued")
    spec = stage.plan(ws, reg, dataset="ethanol", config=dataclasses.replace(CFG, max_epochs=2), name="x")
    assert [r.id for r in reg.list_runs()] == [queued.id] and reg.get_run(queued.id).status == "queued"
    assert spec.new_run is not None and spec.resume is None
    res = stage.execute(RunContext.create(ws, reg, spec.new_run, queued=queued.id), spec, progress=False)
    run = reg.get_run(queued.id)
    assert (res.run_id, run.status, run.name, res.epochs) == (queued.id, "completed", "queued", 2)
    assert run.config["dataset"] == "ethanol" and run.config["sweep"] == {"name": "s"}  # queued entry kept
    assert {c.tag for c in reg.checkpoints(run.id)} == {"best", "last"}
    assert "test_force_mae" in reg.final_metrics(run.id)

    # A resume's plan changes nothing either, and is refused while a live process owns the run.
    more = stage.plan(ws, reg, resume=run.id, overrides={"max_epochs": 3})
    assert (more.resume, more.new_run, reg.get_run(run.id).status) == (run.id, None, "completed")
    with own_run(ws, run.id), pytest.raises(RunBusyError, match=run.id):
        stage.plan(ws, reg, resume=run.id)
    ctx = RunContext.resume(ws, reg, run.id)
    ctx.mark_running()
    assert stage.execute(ctx, more, progress=False).epochs == 3 and reg.get_run(run.id).status == "completed"
