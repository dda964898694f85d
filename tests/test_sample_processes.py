"""`crmse sample --processes N`: replicas sharded over worker processes (issue 18).

The sharded run must sample what one process samples (same seeds, same noise per replica), end
as one run with one samples file, and fail cleanly when a worker dies or the user presses Ctrl-C.
The workspace is the synthetic one of the fault tests (tests/synthetic.py) with its tiny model.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import cli_main, make_workspace, one_line_error, tiny_pretrain

from crmse_cli.errors import CrmseError
from crmse_cli.fileio import sha256_file
from crmse_cli.registry.store import Registry
from crmse_cli.sampling.langevin import LangevinBAOAB
from crmse_cli.sampling.shard import ReplicaRows, randn_rows, split_rows
from crmse_cli.workspace import Workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One workspace with the tiny model ``tiny`` for the whole module (pretraining costs seconds)."""
    mp = pytest.MonkeyPatch()
    mp.delenv("CRMSE_DB_URL", raising=False)
    mp.setenv("CRMSE_NO_PROGRESS", "1")
    ws = make_workspace(tmp_path_factory.mktemp("procs") / "home")
    tiny_pretrain(ws)
    yield ws  # type: ignore[misc]
    mp.undo()


# -- the pieces, in one process -------------------------------------------------------------------


def test_rows_split_contiguously_and_draw_the_rows_of_one_draw() -> None:
    rows = split_rows(7, 3)
    assert [(r.start, r.stop) for r in rows] == [(0, 2), (2, 4), (4, 7)]
    with pytest.raises(CrmseError, match="cannot split 2 replicas over 3 processes"):
        split_rows(2, 3)
    full = torch.randn((7, 4, 3), generator=torch.Generator().manual_seed(5))
    for r in rows:
        gen = torch.Generator().manual_seed(5)
        part = randn_rows((r.count, 4, 3), generator=gen, dtype=full.dtype, device=full.device, rows=r)
        torch.testing.assert_close(part, full[r.start : r.stop], rtol=0, atol=0)


def test_langevin_on_rows_follows_the_one_batch_trajectories_exactly() -> None:
    def harmonic(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # per replica, no coupling
        return 0.5 * 300.0 * (x * x).sum(dim=(1, 2)), -300.0 * x

    masses = [12.0, 1.0, 16.0]
    start = torch.randn((5, 3, 3), generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def run(rows: ReplicaRows | None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(9)
        sampler = LangevinBAOAB(harmonic, masses, 500.0, 0.5, 0.05, gen, rows=rows)
        x = start if rows is None else start[rows.start : rows.stop]
        return sampler.run(sampler.init_state(x), 40).positions

    whole = run(None)
    parts = torch.cat([run(r) for r in split_rows(5, 2)])
    torch.testing.assert_close(parts, whole, rtol=0, atol=0)


def test_processes_are_checked_before_a_run_exists() -> None:
    from crmse_cli.stages.sample import SampleConfig
    from crmse_cli.validate import ConfigError

    with pytest.raises(ConfigError, match="processes must be in"):
        SampleConfig(processes=0)
    with pytest.raises(ConfigError, match="processes must be an integer"):
        SampleConfig(processes=2.5)  # type: ignore[arg-type]
    with pytest.raises(CrmseError, match="with --device cuda use --processes 1"):
        SampleConfig(processes=2, device="cuda")
    with pytest.raises(CrmseError, match="--processes 5 is more than --replicas 4"):
        SampleConfig(processes=5, replicas=4)


# -- whole runs -------------------------------------------------------------------------------------


def _metric_rows(reg: Registry, run_id: str, name: str) -> list[tuple[int | None, float]]:
    return [(m.step, m.value) for m in reg.metrics(run_id, name=name)]


@pytest.mark.slow
def test_two_processes_through_the_console_entry_sample_what_one_process_samples(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``crmse sample --processes 2`` against the same seed in one process: the same trajectories
    (up to float32 rounding: the batched force path is not bit-identical across batch sizes), the
    same stability records and progress rows; one run, one samples file, no shards left."""
    import json

    from crmse_cli.sampling.trajectory import load_trajectory
    from crmse_cli.stages.sample import SampleConfig, sample

    one = sample(ws, "tiny", SampleConfig(replicas=5, steps=200, record_every=20, seed=4), name="one")
    argv = ("--home", str(ws.home), "--json", "sample", "tiny", "--replicas", "5", "--steps", "200")
    code, out, err = cli_main(
        monkeypatch, capsys, *argv, "--record-every", "20", "--seed", "4", "--processes", "2", "--name", "two"
    )
    assert code == 0, err
    res = json.loads(out)
    a, b = load_trajectory(one.samples_path), load_trajectory(res["samples"])
    assert b.positions.shape == a.positions.shape == (11, 5, 9, 3)
    np.testing.assert_array_equal(b.steps, a.steps)
    np.testing.assert_allclose(b.positions, a.positions, rtol=0, atol=1e-4)
    np.testing.assert_allclose(b.energies, a.energies, rtol=1e-6, atol=1e-4)
    for key in ("stability_left", "stability_reason", "stability_first_step"):
        np.testing.assert_array_equal(b.stability[key], a.stability[key])
    assert b.meta["stability"]["n_replicas"] == 5
    reg = Registry.open(ws)
    run = reg.get_run("two")
    assert res["run_id"] == run.id and run.status == "completed" and run.config["processes"] == 2
    assert _metric_rows(reg, run.id, "n_broken") == _metric_rows(reg, one.run_id, "n_broken")
    t1, t2 = (_metric_rows(reg, r, "temperature_kinetic") for r in (one.run_id, run.id))
    assert [s for s, _ in t2] == [s for s, _ in t1] == [0, 100, 200]
    np.testing.assert_allclose([v for _, v in t2], [v for _, v in t1], rtol=1e-5)
    values = {k: v.value for k, v in reg.final_metrics(one.run_id).items()}
    assert {k: v.value for k, v in reg.final_metrics(run.id).items()} == pytest.approx(values, nan_ok=True)
    arts = {a.kind: a for a in reg.artifacts(run.id)}
    assert set(arts) == {"samples", "extxyz"}
    assert arts["samples"].sha256 == sha256_file(res["samples"])
    assert not (ws.run_dir(run.id) / "shards").exists()
    assert math.isfinite(res["metrics"]["stable_fraction"]["value"])
    refused = cli_main(monkeypatch, capsys, "--home", str(ws.home), "sample", "tiny", "--processes", "0")
    one_line_error(refused, "processes must be in")


def _workers(parent: int) -> list[int]:
    """Pids of the spawned multiprocessing children of ``parent`` (not its resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return sorted(found)


def _when_workers_run(action: object, n: int = 2) -> threading.Thread:
    """Call ``action(worker_pids)`` once ``n`` workers of this process have run for a moment."""

    def watch() -> None:
        # A loaded machine can take minutes to reach the spawn (imports, model load); if the
        # workers never show, interrupt the run so the test fails instead of sampling forever.
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            pids = _workers(os.getpid())
            if len(pids) >= n:
                time.sleep(3.0)  # let them import torch and start sampling
                action(pids)  # type: ignore[operator]
                return
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_a_killed_worker_fails_the_run_in_one_line(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    killed: list[int] = []

    def kill_first(pids: list[int]) -> None:
        killed.append(pids[0])
        os.kill(pids[0], signal.SIGKILL)

    watcher = _when_workers_run(kill_first)
    argv = ("--home", str(ws.home), "sample", "tiny", "--replicas", "4", "--steps", "1000000")
    result = cli_main(monkeypatch, capsys, *argv, "--processes", "2", "--name", "killed")
    watcher.join(timeout=5)
    assert killed, "the watcher never saw the workers"
    line = one_line_error(result, "sample worker", f"(pid {killed[0]})", "killed by SIGKILL", "start the")
    assert result[0] == 1
    reg = Registry.open(ws)
    run = reg.get_run("killed")
    assert run.status == "failed" and "killed by SIGKILL" in (run.error or "")
    assert line.endswith(run.error or "")
    assert reg.artifacts(run.id) == []  # no half-written trajectory registered
    assert not (ws.run_dir(run.id) / "shards").exists()
    assert not (ws.run_dir(run.id) / "artifacts" / "samples.npz").exists()
    assert _workers(os.getpid()) == []  # the other worker was stopped


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_and_marks_the_run_interrupted(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # An interactive CLI has Python's default SIGINT handler, but a pytest started as a background
    # job without job control (`cmd &` in a script) inherits SIGINT ignored, and the run sampled on
    # (CI hung here): give the test the handler a user's terminal gives the CLI.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        watcher = _when_workers_run(lambda pids: os.kill(os.getpid(), signal.SIGINT))
        argv = ("--home", str(ws.home), "sample", "tiny", "--replicas", "4", "--steps", "1000000")
        code, _, err = cli_main(monkeypatch, capsys, *argv, "--processes", "2", "--name", "ctrl-c")
        watcher.join(timeout=5)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 130, err
    run = Registry.open(ws).get_run("ctrl-c")
    assert run.status == "interrupted"
    assert f"run {run.id} interrupted" in err and "crmse sample" in err
    assert not (ws.run_dir(run.id) / "shards").exists()
    assert _workers(os.getpid()) == []
