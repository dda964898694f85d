"""RunContext (a run's lock, status, artifacts and metric rows), the Metric record, and stages as
plan + execute: a sweep job executes a queued spec in a context it made, with the real registry."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import pytest

from crmse_cli.errors import CrmseError
from crmse_cli.metric import Metric
from crmse_cli.registry.store import Registry
from crmse_cli.runlock import RunBusyError
from crmse_cli.stages._run import NewRun, RunContext
from crmse_cli.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.resolve(tmp_path / "home").ensure()


def test_a_context_registers_checksummed_artifacts_and_metrics_then_completes(ws: Workspace) -> None:
    reg = Registry.open(ws)
    ctx = RunContext.create(ws, reg, NewRun(kind="sample", config={"dataset": "x"}, seed=3, name="s1"))
    with ctx:
        assert reg.get_run(ctx.run_id).status == "running"
        with pytest.raises(RunBusyError, match=ctx.run_id):  # the context holds the run's lock
            RunContext.resume(ws, reg, ctx.run_id)
        path = ctx.artifact_path("a.txt")
        path.write_text("hello")
        ctx.add_artifact("samples", path, meta={"k": 1})
        ctx.log_metrics([Metric(name="loss", value=2.0, unit="1", step=4), Metric(name="x", value=1.0)])
    run = reg.get_run(ctx.run_id)
    assert (run.status, run.name, run.seed, run.config) == ("completed", "s1", 3, {"dataset": "x"})
    (art,) = reg.artifacts(ctx.run_id)
    # sha256 of "hello"
    assert art.sha256 == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert (art.kind, art.path, art.meta) == ("samples", str(path), {"k": 1})
    RunContext.resume(ws, reg, ctx.run_id)._lock.release()  # type: ignore[union-attr]  # lock freed


@pytest.mark.parametrize(
    ("error", "status"), [(KeyboardInterrupt(), "interrupted"), (CrmseError("bad input"), "failed")]
)
def test_a_context_closes_its_run_on_errors(ws: Workspace, error: BaseException, status: str) -> None:
    reg = Registry.open(ws)
    ctx = RunContext.create(ws, reg, NewRun(kind="evaluate", config={}))
    with pytest.raises(type(error)), ctx:
        raise error
    assert reg.get_run(ctx.run_id).status == status
    RunContext.resume(ws, reg, ctx.run_id)  # the lock was released on the error path


def test_a_context_of_another_rank_writes_nothing(ws: Workspace) -> None:
    reg = Registry.open(ws)
    run = reg.create_run(kind="regularize", config={}, seed=0)
    with RunContext(ws, reg, run.id, lock=None, owner=False) as ctx:
        ctx.log_metric("loss", 1.0, "1", step=1)
        ctx.mark_running()
    assert reg.metrics(run.id) == [] and reg.get_run(run.id).status == "running"


def test_metrics_come_back_as_frozen_records_with_their_attributes(ws: Workspace) -> None:
    reg = Registry.open(ws)
    run = reg.create_run(kind="pretrain", config={}, seed=0)
    reg.log_metrics(run.id, [Metric(name="val_force_mae", value=0.5, unit="kcal/mol/A", split="val", step=7)])
    reg.log_metric(run.id, name="test_force_mae", value=0.25, unit="kcal/mol/A", split="test")
    first, final = reg.metrics(run.id)
    assert isinstance(first, Metric) and isinstance(first.time, datetime)
    assert (first.name, first.value, first.unit, first.split, first.step) == (
        "val_force_mae", 0.5, "kcal/mol/A", "val", 7,
    )  # fmt: skip
    assert reg.final_metrics(run.id)["test_force_mae"] == final and final.step is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.value = 1.0  # type: ignore[misc]


def test_resuming_a_run_whose_config_lacks_a_required_field_names_the_run_and_field(ws: Workspace) -> None:
    from crmse_cli.stages.regularize import RegularizeConfig, regularize

    reg = Registry.open(ws)
    run = reg.create_run(kind="regularize", config={"dataset": "ethanol", "split": "01"}, seed=0)
    reg.set_status(run.id, "interrupted")
    with pytest.raises(CrmseError, match=f"run {run.id}.* no 'source_checkpoint'"):
        regularize(ws, None, RegularizeConfig(), resume=run.id, registry=reg)
    assert reg.get_run(run.id).status == "interrupted"  # refused before the run was touched


def test_a_sweep_job_executes_its_queued_spec_in_a_context_on_the_real_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_sweep import FAST, SAMPLE, make_workspace

    from crmse_cli.stages import regularize as crmse
    from crmse_cli.stages import sweep

    url = f"sqlite:///{tmp_path / 'home' / 'crmse.db'}"
    ws, source = make_workspace(tmp_path / "home", url)
    monkeypatch.setenv("CRMSE_DB_URL", url)
    sweep.create_sweep(
        ws, "ctx", sources=[source], lambdas=[0.5], seeds=[1], regularize_options=FAST, sample_options=SAMPLE
    )
    reg = Registry.open(ws)
    seen: list[tuple[RunContext, crmse.RegularizeSpec]] = []

    def execute(ctx: RunContext, spec: crmse.RegularizeSpec, dist: object = None) -> None:
        seen.append((ctx, spec))
        run = ctx.registry.get_run(ctx.run_id)
        assert run.status == "running" and run.config["sweep"]["lambda"] == 0.5  # the queued row, started
        with pytest.raises(RunBusyError):  # and this worker holds its lock
            RunContext.resume(ws, reg, ctx.run_id)
        raise CrmseError("stop here")

    monkeypatch.setattr(crmse, "execute", execute)
    result = sweep.work(ws, "ctx", registry=reg)
    (ctx, spec) = seen[0]
    assert type(ctx.registry) is Registry and ctx.registry is reg  # no stand-in
    assert result.failed == [ctx.run_id] and spec.config.contrastive.lambda_ == 0.5
    assert spec.new_run is not None and spec.new_run.parent == source
