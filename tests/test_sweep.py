"""Sweeps: a grid of queued regularize runs drained by several workers, on SQLite and PostgreSQL.

Synthetic data (no ../shared): jittered copies of a hand-built ethanol with harmonic-bond labels,
a one-epoch PaiNN of 8 features, CRMSE and sampling of a few steps. Tests taking ``db_url`` run
on both backends (PostgreSQL: see conftest.py's ``pg_server``).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from crmse_cli.errors import CrmseError
from crmse_cli.registry.store import Registry
from crmse_cli.registry.sweeps import QueuedJob
from crmse_cli.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
_ETHANOL = np.array(
    [[0.000, 0.000, 0.000], [1.515, 0.000, 0.000], [2.000, 1.340, 0.000], [-0.390, 1.020, 0.000],
     [-0.390, -0.510, 0.885], [-0.390, -0.510, -0.885], [1.900, -0.510, 0.885], [1.900, -0.510, -0.885],
     [2.960, 1.330, 0.000]]
)  # fmt: skip
_SPECIES = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
_BONDS = [(0, 1), (1, 2), (0, 3), (0, 4), (0, 5), (1, 6), (1, 7), (2, 8)]
FAST = {  # CRMSE of a few tiny updates
    "n_updates": 2, "n_chains": 2, "steps_per_update": 2, "batch_size": 4, "warmup_updates": 1,
    "val_every": 1, "checkpoint_every": 1, "chains_every": 1,
}  # fmt: skip
SAMPLE = {"replicas": 2, "steps": 10, "record_every": 5, "check_every": 5}


def _synthetic_ethanol(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions (n,9,3) Å, energies (n,) kcal/mol, forces) of harmonic bonds, k = 300 kcal/mol/Å²."""
    rng = np.random.default_rng(seed)
    pos = _ETHANOL[None] + 0.04 * rng.standard_normal((n, 9, 3))
    energies = np.full(n, -97000.0)
    forces = np.zeros_like(pos)
    for i, j in _BONDS:
        r0 = np.linalg.norm(_ETHANOL[i] - _ETHANOL[j])
        d = pos[:, i] - pos[:, j]
        r = np.linalg.norm(d, axis=1)
        energies += 300.0 * (r - r0) ** 2
        f = (-600.0 * (r - r0) / r)[:, None] * d
        forces[:, i] += f
        forces[:, j] -= f
    return pos, energies, forces


def make_workspace(home: Path, url: str) -> tuple[Workspace, str]:
    """A workspace on registry ``url`` with the synthetic dataset and a one-epoch model run."""
    from crmse_cli.data.dataset import Dataset
    from crmse_cli.fileio import sha256_file
    from crmse_cli.model import ModelConfig
    from crmse_cli.stages.pretrain import pretrain
    from crmse_cli.train.pretrain import PretrainConfig

    ws = Workspace(home).ensure()
    pos, e, f = _synthetic_ethanol()
    splits = {"01": {"train": np.arange(16), "test": np.arange(16, 24)}}  # 24..39: reference
    data = Dataset("ethanol", _SPECIES, pos, e, f, np.arange(len(e)), splits)
    path = ws.datasets_dir / "ethanol.npz"
    data.save(path)
    reg = Registry(url)
    reg.add_dataset(
        name="ethanol", source="synthetic", sha256=sha256_file(path), path=str(path), n_frames=len(e),
        n_atoms=9, species=_SPECIES.tolist(), units={"energy": "kcal/mol"},
        splits={"01": {"train": 16, "test": 8}}, meta={},
    )  # fmt: skip
    cfg = PretrainConfig(
        model=ModelConfig(features=8, layers=1, n_rbf=4), n_train=16, val_fraction=0.25, batch_size=8,
        lr=3e-3, max_epochs=1, max_minutes=None,
    )  # fmt: skip
    run = pretrain(ws, dataset="ethanol", config=cfg, name="mse", progress=False, registry=reg)
    reg.close()
    return ws, run.run_id


@pytest.fixture
def env(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("CRMSE_DB_URL", db_url)
    monkeypatch.setenv("CRMSE_NO_PROGRESS", "1")
    return {
        **os.environ, "CRMSE_DB_URL": db_url, "CRMSE_HOME": str(tmp_path / "home"), "CRMSE_NO_PROGRESS": "1",
        "CRMSE_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
    }  # fmt: skip


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crmse_cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


# -- the queue and its leases (registry level) ------------------------------------------------------


def _queue(reg: Registry, name: str, n: int) -> list[str]:
    src = reg.create_run(kind="pretrain", name=f"{name}-src", config={}, seed=0)
    jobs = [
        QueuedJob(name=f"{name}.r{i}", parent=src.id, seed=i, config={"sweep": {"i": i}}, params={"i": i})
        for i in range(n)
    ]
    reg.create_sweep(name=name, config={"n": n}, jobs=jobs)
    return [j.run_id for j in reg.sweep_jobs(name)]


def test_claims_take_each_queued_run_once_in_grid_order(db_url: str) -> None:
    a, b = Registry(db_url), Registry(db_url)
    try:
        ids = _queue(a, "grid", 3)
        assert [a.get_run(i).status for i in ids] == ["queued"] * 3
        assert {a.get_run(i).pid for i in ids} == {None}
        got = [a.claim_job("grid"), b.claim_job("grid"), a.claim_job("grid")]
        assert [j.run_id for j in got if j] == ids
        assert a.claim_job("grid") is None and b.claim_job("grid") is None
        assert {(j.state, j.owner_pid, j.attempts) for j in a.sweep_jobs("grid")} == {
            ("running", os.getpid(), 1)
        }
        with pytest.raises(CrmseError, match="already exists"):
            _queue(a, "grid", 1)
        assert len(a.sweep_jobs("grid")) == 3  # the clash wrote nothing
    finally:
        a.close()
        b.close()


def test_leases_of_dead_workers_are_requeued_and_live_ones_kept(db_url: str) -> None:
    reg = Registry(db_url)
    try:
        ids = _queue(reg, "lease", 3)
        jobs = [reg.claim_job("lease") for _ in ids]
        assert all(jobs)
        child = reg.create_run(kind="sample", parent=ids[0], config={}, seed=0)
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        )
        old = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
        with reg.engine.begin() as conn:  # job 0: its pid on this host is gone; job 1: another host, silent
            conn.execute(
                text("UPDATE sweep_jobs SET owner_pid = :p WHERE run_id = :r"),
                {"p": int(dead.stdout), "r": ids[0]},
            )
            conn.execute(
                text("UPDATE runs SET pid = :p WHERE id IN (:a, :b)"),
                {"p": int(dead.stdout), "a": ids[0], "b": child.id},
            )
            conn.execute(
                text("UPDATE sweep_jobs SET owner_host = 'elsewhere', heartbeat = :t WHERE run_id = :r"),
                {"t": old, "r": ids[1]},
            )
            conn.execute(text("UPDATE runs SET status = 'running' WHERE id = :r"), {"r": ids[0]})
        assert {j.run_id for j in reg.requeue_dead_jobs("lease", stale_after_s=600)} == {ids[0], ids[1]}
        states = {j.run_id: (j.state, j.owner_pid) for j in reg.sweep_jobs("lease")}
        assert states[ids[0]] == ("queued", None) and states[ids[1]] == ("queued", None)
        assert states[ids[2]] == ("running", os.getpid())  # this process is alive and beating
        assert reg.get_run(ids[0]).status == "interrupted" and "re-queued" in (
            reg.get_run(ids[0]).error or ""
        )
        assert reg.get_run(child.id).status == "interrupted"
        assert reg.heartbeat_job(jobs[2].id) and not reg.heartbeat_job(jobs[0].id)  # type: ignore[union-attr]
        assert not reg.finish_job(jobs[0].id, "done")  # type: ignore[union-attr]  # no longer its lease
        assert reg.finish_job(jobs[2].id, "done")  # type: ignore[union-attr]
        assert reg.claim_job("lease").attempts == 2  # type: ignore[union-attr]  # a requeued job counts its tries
    finally:
        reg.close()


def test_the_heartbeat_thread_keeps_the_lease_fresh(db_url: str) -> None:
    from crmse_cli.stages.sweep import _Heartbeat

    reg = Registry(db_url)
    try:
        _queue(reg, "beat", 1)
        job = reg.claim_job("beat")
        assert job is not None and job.heartbeat is not None
        with _Heartbeat(reg, job.id, every_s=0.05):
            deadline = time.monotonic() + 30
            while reg.sweep_jobs("beat")[0].heartbeat == job.heartbeat:
                assert time.monotonic() < deadline, "no heartbeat was written"
                time.sleep(0.05)
        # Another host's lease refreshed just now survives a short staleness limit; an old one would not.
        with reg.engine.begin() as conn:
            conn.execute(text("UPDATE sweep_jobs SET owner_host = 'elsewhere'"))
        assert reg.requeue_dead_jobs("beat", stale_after_s=60) == []
        assert reg.requeue_dead_jobs("beat", stale_after_s=-1) != []
    finally:
        reg.close()


def test_a_live_worker_of_this_host_keeps_its_job_however_old_its_heartbeat(db_url: str) -> None:
    """Issue 28 #2: a staleness limit below the heartbeat took live jobs, and points ran twice."""
    reg = Registry(db_url)
    try:
        ids = _queue(reg, "live", 1)
        job = reg.claim_job("live")
        assert job is not None
        old = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
        with reg.engine.begin() as conn:  # this process, alive, silent for an hour
            conn.execute(text("UPDATE sweep_jobs SET heartbeat = :t"), {"t": old})
        assert reg.requeue_dead_jobs("live", stale_after_s=1e-3) == []
        [kept] = reg.sweep_jobs("live")
        assert (kept.state, kept.owner_pid, kept.attempts) == ("running", os.getpid(), 1)
        assert reg.get_run(ids[0]).status == "queued" and reg.finish_job(job.id, "done")
    finally:
        reg.close()


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "0", "30", "60"])
def test_a_stale_limit_not_above_two_heartbeats_is_refused(
    tmp_path: Path, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from synthetic import cli_main, one_line_error

    from crmse_cli.stages.sweep import check_stale_after

    monkeypatch.delenv("CRMSE_DB_URL", raising=False)
    home = tmp_path / "home"
    res = cli_main(monkeypatch, capsys, "--home", str(home), "sweep", "work", "any", "--stale-after-s", value)
    assert res[0] == 1
    one_line_error(res, "--stale-after-s must")
    assert not home.exists()  # refused before the registry was opened
    check_stale_after(60.5)
    check_stale_after(0.2, heartbeat_s=0.05)


def test_options_are_checked_by_field_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRMSE_DB_URL", raising=False)
    from crmse_cli.stages._grid import regularize_config, sample_config
    from crmse_cli.stages.sweep import create_sweep

    cfg = regularize_config(
        {"n_updates": 7, "lambda": 9.0, "val_every": 3}, lambda_=0.1, seed=4, device="cpu"
    )
    assert (cfg.contrastive.n_updates, cfg.contrastive.lambda_, cfg.contrastive.seed, cfg.val_every) == (
        7,
        0.1,
        4,
        3,
    )
    assert sample_config({"steps": 5}, seed=2, device="cpu").steps == 5
    with pytest.raises(CrmseError, match="unknown regularize option.*n_update.*valid: .*n_updates"):
        regularize_config({"n_update": 7}, lambda_=0.1, seed=0, device="cpu")
    with pytest.raises(CrmseError, match="unknown sample option"):
        sample_config({"replica": 2}, seed=0, device="cpu")
    ws = Workspace(tmp_path / "h")
    for kwargs, match in (
        ({"sources": ["x"], "lambdas": [0.1, 0.1], "seeds": [0]}, "must not repeat"),
        ({"sources": ["x"], "lambdas": [-1.0], "seeds": [0]}, "--lambda must be in"),
        ({"sources": [], "lambdas": [0.1], "seeds": [0]}, "at least one"),
        ({"sources": ["nope"], "lambdas": [0.1], "seeds": [0]}, "no run 'nope'"),
    ):
        with pytest.raises(CrmseError, match=match):
            create_sweep(ws, "bad-grid", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(CrmseError, match="sweep name"):
        create_sweep(ws, "a b", sources=["x"], lambdas=[0.1], seeds=[0])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--lambda", "0,inf"], "--lambda must be a finite number, got inf"),
        (["--lambda", "0.1,nan"], "--lambda must be a finite number, got nan"),
        (["--lambda", "0,2e6"], "--lambda must be in"),
        (["--lambda", "0", "--seeds", "0,-1"], "--seeds must be >= 0, got -1"),
        (["--lambda", "0", "--set", "lambda=5"], "--set lambda=...: the grid sets lambda"),
        (["--lambda", "0", "--set", "lambda_=5"], "--set lambda_=...: the grid sets lambda_"),
        (["--lambda", "0", "--set", "seed=3"], "the grid sets seed at every point; give it with --seeds"),
        (["--lambda", "0", "--set", "device=cuda"], "give it with --device"),
        (["--lambda", "0", "--sample-set", "seed=3"], "--sample-set seed=...: the grid sets seed"),
    ],
)
def test_sweep_create_checks_every_grid_value_and_refuses_grid_keys(
    tmp_path: Path,
    args: list[str],
    match: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 28 #7: only the first lambda and seed were checked; ``--set lambda=5`` was stored and ignored."""
    from synthetic import cli_main, one_line_error

    monkeypatch.delenv("CRMSE_DB_URL", raising=False)
    home = tmp_path / "home"
    res = cli_main(
        monkeypatch, capsys, "--home", str(home), "sweep", "create", "--name", "g", "--from", "x", *args
    )
    assert res[0] == 1
    one_line_error(res, match)
    assert not home.exists()  # refused before the registry was opened: nothing queued


def test_command_line_settings_are_json_or_text() -> None:
    from crmse_cli.cli.sweep_cmd import parse_settings

    got = parse_settings(["n_updates=50", "lr=1e-4", "grad_clip=null", "sampler=mala", "n-chains=8"], "--set")
    assert got == {"n_updates": 50, "lr": 1e-4, "grad_clip": None, "sampler": "mala", "n_chains": 8}
    with pytest.raises(CrmseError, match="KEY=VALUE"):
        parse_settings(["n_updates"], "--set")


def test_summary_means_spread_and_the_control_apart() -> None:
    from crmse_cli.report.sweep import markdown_table, metric_figure, summarize

    points = [
        {
            "source": "s",
            "lambda": lam,
            "seed": seed,
            "metrics": {"energy_ks": (v, "1"), "dihedral_profile_error.a": (1.0, "kcal/mol")},
        }
        for lam, seed, v in ((0.0, 0, 0.5), (0.0, 1, 0.7), (0.1, 0, 1.0), (0.1, 1, 3.0), (1.0, 0, 2.0))
    ]
    summary = summarize(points, {"s": "mse"})
    assert summary.lambdas == [0.0, 0.1, 1.0]
    assert [k for k, _, _ in summary.metrics] == ["energy_ks", "dihedral_profile_error.a"]
    assert summary.metrics[1][1:] == ("a profile error", "kcal/mol")  # the metric evaluate writes
    cell = summary.cells[("mse", 0.1, "energy_ks")]
    assert (cell.mean, cell.std) == (2.0, pytest.approx(math.sqrt(2.0)))
    assert summary.cells[("mse", 1.0, "energy_ks")].std == 0.0  # one seed: no spread
    fig = metric_figure(summary, "energy_ks", "energy KS", "1")
    assert fig.layout.xaxis.type == "log"
    xs = [x for tr in fig.data for x in (tr.x or [])]
    assert 0.0 not in xs  # lambda = 0 is the band, not a point on the log axis
    control = [tr for tr in fig.data if "control" in (tr.name or "")]
    assert len(control) == 1 and list(control[0].y) == [pytest.approx(0.6)] * 2
    table = markdown_table(summary).splitlines()
    assert len(table) == 2 + 3 and table[3].startswith("| mse | 0.1 | 2 | 2 ± 1.414")


# -- workers ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_three_workers_drain_a_sweep_exactly_once(tmp_path: Path, db_url: str, env: dict[str, str]) -> None:
    ws, model = make_workspace(tmp_path / "home", db_url)
    from crmse_cli.stages.sweep import create_sweep
    from crmse_cli.stages.sweep_status import sweep_status

    grid = create_sweep(ws, "plateau", sources=["mse"], lambdas=[0.0, 0.015, 1.0], seeds=[0, 1],
                        regularize_options=FAST, sample_options=SAMPLE)  # fmt: skip
    assert len(grid.run_ids) == 6
    workers = [
        subprocess.Popen([sys.executable, "-m", "crmse_cli", "sweep", "work", "plateau"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]  # fmt: skip
    for w in workers:
        out, err = w.communicate(timeout=600)
        assert w.returncode == 0, err
    reg = Registry(db_url)
    try:
        jobs = reg.sweep_jobs("plateau")
        assert len(jobs) == 6 and {(j.state, j.attempts) for j in jobs} == {("done", 1)}
        assert sorted((j.params["lambda"], j.params["seed"]) for j in jobs) == sorted(
            (lam, s) for lam in (0.0, 0.015, 1.0) for s in (0, 1)
        )
        regs = [r for r in reg.list_runs(kind="regularize")]
        assert sorted(r.id for r in regs) == sorted(j.run_id for j in jobs)  # no extra regularize run
        for j in jobs:
            run = reg.get_run(j.run_id)
            assert run.status == "completed" and run.parent == model
            assert run.config["sweep"]["lambda"] == j.params["lambda"] == run.config["contrastive"]["lambda_"]
            assert run.config["contrastive"]["n_updates"] == 2 and run.seed == j.params["seed"]
            assert [m.step for m in reg.metrics(run.id, name="loss")] == [1, 2]
            [smp_run] = reg.children(run.id, kind="sample")
            [ev] = reg.children(smp_run.id, kind="evaluate")
            assert smp_run.status == ev.status == "completed" and smp_run.config["replicas"] == 2
        assert len(reg.list_runs(kind="sample")) == len(reg.list_runs(kind="evaluate")) == 6
    finally:
        reg.close()
    assert [st.stage for st in sweep_status(ws, "plateau")] == ["done"] * 6
    report = _cli(env, "sweep", "report", "plateau", "--out", str(tmp_path / "p.html"), "--markdown")
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "p.html").read_text()
    assert "<script src=" not in page and "energy KS" in page and "test force MAE" in page
    assert "grad ratio" in page and "replicas that left" in page  # the trainer's per-update ratio, averaged
    rows = [ln for ln in report.stdout.splitlines() if ln.startswith("| mse |")]
    assert [r.split("|")[2].strip() for r in rows] == ["0", "0.015", "1"] and all("| 2 |" in r for r in rows)
    assert ws.home.is_dir()


_SLOW_WORKER = """
import sys, time
sys.argv = ["crmse", "sweep", "work", "crash"]
from crmse_cli.train import contrastive
step = contrastive.ContrastiveTrainer.step
def slow(self):
    time.sleep(0.3)
    return step(self)
contrastive.ContrastiveTrainer.step = slow
from crmse_cli.cli.app import main
main()
"""


@pytest.mark.slow
def test_a_killed_worker_leaves_its_run_to_the_next(tmp_path: Path, db_url: str, env: dict[str, str]) -> None:
    from crmse_cli.stages.sweep import create_sweep, work

    ws, _ = make_workspace(tmp_path / "home", db_url)
    opts = {**FAST, "n_updates": 8}
    create_sweep(ws, "crash", sources=["mse"], lambdas=[0.015], seeds=[0], regularize_options=opts,
                 sample_options=SAMPLE)  # fmt: skip
    reg = Registry(db_url)
    try:
        [job] = reg.sweep_jobs("crash")
        victim = subprocess.Popen(
            [sys.executable, "-c", _SLOW_WORKER], env=env, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 180
        while not any(c.step >= 2 for c in reg.checkpoints(job.run_id)):
            assert victim.poll() is None, victim.communicate()[1]
            assert time.monotonic() < deadline, "the worker made no progress"
            time.sleep(0.05)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        [job] = reg.sweep_jobs("crash")
        assert job.state == "running" and job.owner_pid == victim.pid  # a lease nobody holds
        assert reg.get_run(job.run_id).status == "running"

        res = work(ws, "crash", registry=reg)  # the next worker: this process
        assert res.requeued == [job.run_id] and res.done == [job.run_id] and res.failed == []
        [job] = reg.sweep_jobs("crash")
        assert (job.state, job.attempts) == ("done", 2)
        run = reg.get_run(job.run_id)
        assert run.status == "completed" and run.pid == os.getpid()
        assert [m.step for m in reg.metrics(run.id, name="loss")] == list(range(1, 9))  # resumed, none twice
        assert len(reg.children(run.id, kind="sample")) == 1
    finally:
        reg.close()


def test_a_failed_run_is_reported_and_retried_on_request(
    tmp_path: Path, db_url: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmse_cli.stages import sample as sample_stage
    from crmse_cli.stages.sweep import create_sweep, work
    from crmse_cli.stages.sweep_status import sweep_points, sweep_status

    ws, _ = make_workspace(tmp_path / "home", db_url)
    create_sweep(ws, "flaky", sources=["mse"], lambdas=[0.1], seeds=[0], regularize_options=FAST,
                 sample_options=SAMPLE)  # fmt: skip

    def broken(*args: object, **kwargs: object) -> None:
        raise CrmseError("disk full")

    real = sample_stage.sample
    monkeypatch.setattr(sample_stage, "sample", broken)
    res = work(ws, "flaky")
    assert res.done == [] and len(res.failed) == 1
    [st] = sweep_status(ws, "flaky")
    assert (st.state, st.stage, st.run_status, st.error) == ("failed", "sample", "completed", "disk full")
    monkeypatch.setattr(sample_stage, "sample", real)
    assert work(ws, "flaky").done == []  # failed jobs wait for --retry-failed
    assert work(ws, "flaky", retry_failed=True).done == res.failed
    [st] = sweep_status(ws, "flaky")
    assert (st.state, st.stage, st.attempts) == ("done", "done", 2)
    [point] = sweep_points(ws, "flaky")
    assert point["metrics"]["grad_ratio"][0] > 0 and point["metrics"]["n_left"][1] == "1"
