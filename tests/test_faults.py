"""Faults and misuse: one owner per run, interrupts that say what happened (issue 17)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synthetic import cli_main, interrupted_regularize, make_workspace, one_line_error, tiny_pretrain

from crmse_cli.errors import CrmseError
from crmse_cli.metric import Metric
from crmse_cli.registry.store import Registry
from crmse_cli.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]


def _hold_lock(run_dir: Path) -> subprocess.Popen[str]:
    """Another process that owns the run (holds its lock) until killed."""
    code = (
        "import sys, time; from crmse_cli.runlock import RunLock; "
        "lock = RunLock.acquire(sys.argv[1], 'x'); print('held', flush=True); time.sleep(120)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.delenv("CRMSE_DB_URL", raising=False)
    monkeypatch.setenv("CRMSE_NO_PROGRESS", "1")
    return make_workspace(tmp_path / "home")


@pytest.mark.parametrize("kind", ["pretrain", "regularize"])
def test_resuming_a_run_whose_owner_is_alive_is_refused(ws: Workspace, kind: str) -> None:
    from crmse_cli.stages.pretrain import pretrain
    from crmse_cli.stages.regularize import RegularizeConfig, regularize

    reg = Registry.open(ws)
    run = reg.create_run(
        kind=kind,
        name="busy",
        dataset="ethanol",
        config={"dataset": "ethanol", "source_checkpoint": "/no/such.pt"},
        seed=0,
    )
    reg.set_status(run.id, "interrupted")
    owner = _hold_lock(ws.run_dir(run.id))
    try:
        with pytest.raises(CrmseError, match=rf"run {run.id} is being run by process {owner.pid}\b"):
            if kind == "pretrain":
                pretrain(ws, resume="busy", progress=False)
            else:
                regularize(ws, None, RegularizeConfig(), resume="busy")
        assert reg.get_run("busy").status == "interrupted"  # untouched
    finally:
        owner.kill()
        owner.wait()
    # The kernel released the dead owner's lock: the run is free again (the resume then goes on
    # to its checkpoint, which this bare row does not have).
    with pytest.raises(CrmseError) as err:
        pretrain(ws, resume="busy", progress=False) if kind == "pretrain" else regularize(
            ws, None, RegularizeConfig(), resume="busy"
        )
    assert "being run by" not in str(err.value)


def test_resuming_a_run_that_predates_a_setting_refuses_another_value_of_it(ws: Workspace) -> None:
    """A setting the stored run lacks reads as its default: another value given is refused."""
    from crmse_cli.stages.regularize import RegularizeConfig, regularize

    reg = Registry.open(ws)
    old = {"lambda_": 0.015, "lambda_units": "eV", "n_chains": 64}  # before eta_units, arms, budget
    run = reg.create_run(
        kind="regularize",
        name="old",
        dataset="ethanol",
        config={"dataset": "ethanol", "source_checkpoint": "/no/such.pt", "contrastive": old},
        seed=0,
    )
    reg.set_status(run.id, "interrupted")
    refused = {
        "eta_units": ("A2_per_eV", "'A2'"),
        "chain_source": ("data", "'model'"),
        "ema_decay": (0.99, "0.0"),
        "force_budget": (0.1, "None"),
    }
    for key, (value, default) in refused.items():
        with pytest.raises(CrmseError, match=rf"started with {key} = {default}, not"):
            regularize(ws, None, RegularizeConfig(), resume="old", settings={key: value})
    # The defaults themselves, and what the run stored, are the run's own: the resume goes on (to
    # the checkpoint this bare row does not have).
    same = {"eta_units": "A2", "chain_source": "model", "ema_decay": 0.0, "force_budget": None, **old}
    with pytest.raises(CrmseError) as err:
        regularize(ws, None, RegularizeConfig(), resume="old", settings=same)
    assert "started with" not in str(err.value)
    assert reg.get_run("old").status == "interrupted"


def test_a_live_owner_keeps_its_run_running_even_if_the_pid_looks_dead(ws: Workspace) -> None:
    """``crmse runs`` marks a run interrupted only when its lock is free, not by pid alone."""
    reg = Registry.open(ws)
    run = reg.create_run(kind="pretrain", config={}, seed=0)
    owner = _hold_lock(ws.run_dir(run.id))
    try:
        with reg._session() as s:  # the recorded pid was reused / is gone; the lock still held
            from crmse_cli.registry.tables import RunRow

            s.get(RunRow, run.id).pid = 2**22 + 12345
        assert reg.reap_stale() == []
    finally:
        owner.kill()
        owner.wait()
    assert reg.reap_stale() == [run.id]
    info = reg.get_run(run.id)
    assert info.status == "interrupted" and f"crmse pretrain --resume {run.id}" in (info.error or "")


def test_a_killed_sample_run_is_not_told_to_resume(ws: Workspace) -> None:
    reg = Registry.open(ws)
    run = reg.create_run(kind="sample", config={}, seed=0)
    with reg._session() as s:
        from crmse_cli.registry.tables import RunRow

        s.get(RunRow, run.id).pid = 2**22 + 12345
    assert reg.reap_stale() == [run.id]
    error = reg.get_run(run.id).error or ""
    assert "--resume" not in error and "crmse sample" in error


def test_ctrl_c_prints_the_run_and_how_to_resume(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from crmse_cli.cli import app as app_module
    from crmse_cli.train.pretrain import PretrainTrainer

    def interrupted(self: PretrainTrainer) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(PretrainTrainer, "run_epoch", interrupted)
    monkeypatch.setattr(
        sys, "argv", ["crmse", "--home", str(ws.home), "pretrain", "--dataset", "ethanol", "--name", "ctrlc",
                      "--max-epochs", "2", "--n-train", "20", "--n-val", "5"],
    )  # fmt: skip
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as done:
            app_module.main()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert done.value.code == 130
    run = Registry.open(ws).get_run("ctrlc")
    assert run.status == "interrupted"
    err = capsys.readouterr().err
    assert (
        f"interrupted: run {run.id} interrupted; continue it with `crmse pretrain --resume {run.id}`" in err
    )


@pytest.mark.slow
def test_a_second_resume_is_refused_and_sigterm_closes_the_run(ws: Workspace, tmp_path: Path) -> None:
    """SIGTERM (a scheduler's stop) ends like Ctrl-C: run interrupted, checkpoints registered."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "CRMSE_HOME": str(ws.home), "CRMSE_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "crmse_cli", "pretrain", "--dataset", "ethanol", "--name", "term",
           "--n-train", "20", "--n-val", "5", "--max-epochs", "100000",
           "--config", str(tmp_path / "c.toml")]  # fmt: skip
    (tmp_path / "c.toml").write_text(
        "batch_size = 10\nema_decay = 0.0\n[model]\nfeatures = 8\nlayers = 1\nn_rbf = 4\n"
    )
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        reg = Registry.open(ws)
        while time.time() < deadline:
            runs = [r for r in reg.list_runs() if r.name == "term"]
            if runs and (ws.run_dir(runs[0].id) / "checkpoints" / "last.pt").exists():
                break
            time.sleep(0.2)
        # The reproduction: a second process resumes the run while the first still trains.
        from crmse_cli.stages.pretrain import pretrain

        with pytest.raises(CrmseError, match=rf"is being run by process {proc.pid}\b"):
            pretrain(ws, resume="term", progress=False)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    run = reg.get_run("term")
    assert run.status == "interrupted"
    assert f"resume {run.id}" in err
    assert {c.tag for c in reg.checkpoints(run.id)} >= {"last", "best"}


def test_tiny_pretrain_fixture_works(ws: Workspace) -> None:
    run_id = tiny_pretrain(ws)
    assert Registry.open(ws).get_run(run_id).status == "completed"


def _flip_byte(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))


def _tiny_sample_config():  # noqa: ANN202
    from crmse_cli.stages.sample import SampleConfig

    return SampleConfig(replicas=2, steps=4, record_every=2, check_every=2)


@pytest.mark.slow
def test_a_corrupted_checkpoint_is_refused_on_load(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from crmse_cli.errors import DataError
    from crmse_cli.stages.sample import sample

    run_id = tiny_pretrain(ws)
    best = ws.run_dir(run_id) / "checkpoints" / "best.pt"
    _flip_byte(best)
    for ref in (run_id, str(best)):  # by run, and by the file's path
        with pytest.raises(DataError, match=rf"checkpoint {best} does not match the checksum"):
            sample(ws, ref, _tiny_sample_config())
    assert Registry.open(ws).list_runs(kind="sample") == []
    cmd = ("--home", str(ws.home), "sample", run_id, "--replicas", "2", "--steps", "4")
    one_line_error(cli_main(monkeypatch, capsys, *cmd), str(best))


def test_checkpoint_rows_follow_their_files_after_a_resume(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmse_cli.fileio import sha256_file
    from crmse_cli.train.pretrain import PretrainTrainer

    original = PretrainTrainer.run_epoch

    def interrupted(self: PretrainTrainer) -> object:
        if self.epoch == 1:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(PretrainTrainer, "run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tiny_pretrain(ws, name="cut", max_epochs=3)
    monkeypatch.setattr(PretrainTrainer, "run_epoch", original)
    from crmse_cli.stages.pretrain import pretrain

    pretrain(ws, resume="cut", progress=False)
    reg = Registry.open(ws)
    rows = reg.checkpoints(reg.get_run("cut").id)
    assert len(rows) == len({r.path for r in rows})  # one row per file
    for row in rows:
        assert sha256_file(row.path) == row.sha256, row.tag
    assert {r.tag: r.step for r in rows}["last"] == 3


KILL_AFTER_EPOCH_2 = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from crmse_cli.train.pretrain import PretrainTrainer
from crmse_cli.workspace import Workspace
from synthetic import tiny_pretrain

original = PretrainTrainer.run_epoch

def killed(self):
    if self.epoch == 2:
        os.kill(os.getpid(), signal.{sig})
    return original(self)

PretrainTrainer.run_epoch = killed
tiny_pretrain(Workspace.resolve({home!r}), name="killed", max_epochs=5)
"""


@pytest.mark.slow
def test_sigkill_during_pretrain_leaves_registered_usable_checkpoints(ws: Workspace) -> None:
    from crmse_cli.stages._models import run_checkpoint
    from crmse_cli.stages.sample import sample

    code = KILL_AFTER_EPOCH_2.format(tests=str(REPO / "tests"), home=str(ws.home), sig="SIGKILL")
    env = {**os.environ, "PYTHONPATH": str(REPO), "CRMSE_NO_PROGRESS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    reg = Registry.open(ws)
    run = reg.get_run("killed")
    assert {c.tag: c.step for c in reg.checkpoints(run.id)}["last"] == 2
    assert run_checkpoint(reg, run).name == "best.pt"
    res = sample(ws, "killed", _tiny_sample_config())
    assert reg.get_run(res.run_id).status == "completed"


def test_regularize_resume_on_a_corrupt_last_checkpoint_refuses(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmse_cli.errors import DataError
    from crmse_cli.stages.regularize import regularize

    tiny_pretrain(ws)
    cfg = interrupted_regularize(ws, monkeypatch)
    reg = Registry.open(ws)
    run = reg.get_run("reg-cut")
    last = ws.run_dir(run.id) / "checkpoints" / "last.pt"
    _flip_byte(last)
    with pytest.raises(DataError, match=str(last)):
        regularize(ws, None, cfg, resume="reg-cut")
    assert reg.get_run("reg-cut").status == "interrupted"


def _stale_running_run(reg: Registry, kind: str = "pretrain") -> str:
    """A run left ``running`` by a process that is gone (a pid above Linux's pid_max)."""
    from crmse_cli.registry.tables import RunRow

    run = reg.create_run(kind=kind, config={}, seed=0)
    with reg._session() as s:
        s.get(RunRow, run.id).pid = 2**22 + 12345
    return run.id


def _read_only(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``crmse ARGS`` on workspace ``home`` made read-only (a read-only bind mount when root,
    whom file modes do not stop; else the write bits removed)."""
    from test_cli import SCRIPT

    cmd = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "crmse_cli"]
    env = {**os.environ, "CRMSE_HOME": str(home), "CRMSE_NO_PROGRESS": "1", "COLUMNS": "200"}
    env.pop("CRMSE_DB_URL", None)
    if os.geteuid() == 0:
        mount = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
        probe = subprocess.run(["unshare", "-m", "sh", "-c", mount, str(home), "true"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip("root without mount namespaces: cannot make a read-only workspace")
        return subprocess.run(
            ["unshare", "-m", "sh", "-c", mount, str(home), *cmd, *args],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
    paths = [home, *home.rglob("*")]
    modes = {p: p.stat().st_mode for p in paths}
    try:
        for p in paths:
            p.chmod(modes[p] & ~0o222)
        return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=120)
    finally:
        for p in reversed(paths):
            p.chmod(modes[p])


@pytest.mark.slow
def test_read_only_workspace_lists_and_refuses_writes_in_one_line(ws: Workspace) -> None:
    from test_cli import _one_line_error

    reg = Registry.open(ws)
    stale = _stale_running_run(reg)
    done = reg.create_run(kind="pretrain", name="done", config={"lr": 0.001}, seed=0)
    reg.log_metric(done.id, name="test_force_mae", value=0.5, unit="kcal/mol/A")
    reg.set_status(done.id, "completed")
    reg.close()
    listing = _read_only(ws.home, "runs")
    assert listing.returncode == 0, listing.stderr
    assert stale in listing.stdout and "done" in listing.stdout
    shown = _read_only(ws.home, "show", "done")
    assert shown.returncode == 0 and "test_force_mae" in shown.stdout, shown.stderr
    sets = _read_only(ws.home, "--json", "datasets")
    assert sets.returncode == 0 and '"ethanol"' in sets.stdout, sets.stderr
    _one_line_error(_read_only(ws.home, "pretrain", "--dataset", "ethanol"), "read-only")


def test_a_workspace_under_a_file_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "plain").write_text("not a folder")
    for home in (tmp_path / "plain", tmp_path / "plain" / "home"):
        for cmd in (("runs",), ("pretrain", "--dataset", "x")):
            one_line_error(
                cli_main(monkeypatch, capsys, "--home", str(home), *cmd), "is a file, not a folder"
            )


def _damage_pages(db: Path) -> None:
    """Overwrite three whole pages in the middle of ``db``, b-tree page headers included.

    Damaging only a byte range inside a page is caught or not depending on where the page's
    free space falls, which moves with the length of the paths the test stores (a CI checkout
    path missed it); a garbage page header is caught by ``integrity_check`` wherever it lands.
    """
    blob = bytearray(db.read_bytes())
    page = 4096
    middle = len(blob) // page // 2
    for k in range(middle, middle + 3):
        blob[k * page : (k + 1) * page] = bytes(range(256)) * (page // 256)
    db.write_bytes(bytes(blob))


def test_a_damaged_registry_refuses_writes(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = Registry.open(ws)
    for i in range(8):
        run = reg.create_run(kind="pretrain", name=f"r{i}x", config={}, seed=0)
        reg.log_metrics(run.id, [Metric(name="loss", value=float(j), unit="1", step=j) for j in range(300)])
        reg.set_status(run.id, "completed")
    reg.close()
    _damage_pages(ws.home / "crmse.db")
    damaged = Registry.open(ws)
    with pytest.raises(CrmseError, match="is damaged"):
        damaged.create_run(kind="pretrain", name="more", config={}, seed=0)
    assert damaged.check_integrity()
    one_line_error(cli_main(monkeypatch, capsys, "--home", str(ws.home), "runs"), "damaged", "crmse doctor")


def test_a_file_that_is_not_a_database_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "crmse.db").write_bytes(b"not sqlite at all " * 300)
    runs = cli_main(monkeypatch, capsys, "--home", str(home), "runs")
    one_line_error(runs, "crmse.db is damaged (file is not a database)")
    one_line_error(
        cli_main(monkeypatch, capsys, "--home", str(home), "pretrain", "--dataset", "x"), "damaged"
    )


def test_xyz_energy_that_is_not_a_number_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = []
    for frame in range(3):
        lines += ["2", 'Properties=species:S:1:pos:R:3:forces:R:3 energy=banana pbc="F F F"']
        lines += [f"H 0.0 0.0 {0.1 * frame} 0.0 0.0 0.1", "H 0.0 0.0 0.8 0.0 0.0 -0.1"]
    path = tmp_path / "banana.xyz"
    path.write_text("\n".join(lines) + "\n")
    cmd = ("--home", str(tmp_path / "home"), "fetch", "xyz", str(path), "--name", "h2", "--energy-unit", "eV")
    one_line_error(cli_main(monkeypatch, capsys, *cmd), "frame 0 has energy 'banana', not a number")


def test_truncated_npz_files_are_one_line_errors(tmp_path: Path) -> None:
    import numpy as np

    from crmse_cli.data.dataset import Dataset
    from crmse_cli.errors import DataError
    from crmse_cli.sampling.trajectory import load_trajectory

    path = tmp_path / "samples.npz"
    np.savez(path, positions=np.zeros((3, 2, 9, 3)), meta=np.array("{}"))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="samples.npz is unreadable"):
        load_trajectory(path)
    with pytest.raises(DataError, match="samples.npz is unreadable"):
        Dataset.load(path)


def test_evaluate_refuses_truncated_samples_before_making_a_run(ws: Workspace) -> None:
    from crmse_cli.errors import DataError
    from crmse_cli.stages.evaluate import evaluate
    from crmse_cli.stages.sample import sample

    tiny_pretrain(ws)
    res = sample(ws, "tiny", _tiny_sample_config(), name="smp")
    res.samples_path.write_bytes(res.samples_path.read_bytes()[:300])
    with pytest.raises(
        DataError, match="samples file .*samples.npz of run .* does not match its recorded checksum"
    ):
        evaluate(ws, "smp")
    assert Registry.open(ws).list_runs(kind="evaluate") == []


def test_negative_seeds_are_refused_in_one_line(tmp_path: Path) -> None:
    from crmse_cli.data.xyz import random_split

    with pytest.raises(CrmseError, match="--split-seed must be >= 0, got -1"):
        random_split(10, 0.2, -1)


def test_out_of_memory_is_one_line(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from crmse_cli.cli import app as app_module
    from crmse_cli.stages import sample as sample_stage

    def huge(*args: object, **kwargs: object) -> None:
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you "
            "tried to allocate 86400000000 bytes. Error code 12 (Cannot allocate memory)\n"
            + "".join(f"frame #{i}: c10::something() + 0x{i:x}\n" for i in range(11))
        )

    monkeypatch.setattr(sample_stage, "sample", huge)
    monkeypatch.setattr(
        sys, "argv", ["crmse", "--home", str(ws.home), "sample", "tiny", "--replicas", "900000"]
    )
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as done:
            app_module.main()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert done.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: out of memory") and "--replicas" in lines[0]


def test_absurd_replica_counts_are_refused_before_allocating() -> None:
    from crmse_cli.stages.sample import SampleConfig

    with pytest.raises(CrmseError, match="replicas must be in"):
        SampleConfig(replicas=10**9)


def test_show_warns_about_deleted_files(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = Registry.open(ws)
    run = reg.create_run(kind="sample", name="gone", config={}, seed=0)
    kept, deleted = tmp_path / "kept.npz", tmp_path / "deleted.npz"
    kept.write_bytes(b"x")
    reg.add_artifact(run.id, kind="samples", path=str(kept), sha256="0" * 64)
    reg.add_artifact(run.id, kind="extxyz", path=str(deleted), sha256="0" * 64)
    reg.set_status(run.id, "completed")
    code, out, err = cli_main(monkeypatch, capsys, "--home", str(ws.home), "show", "gone")
    assert code == 0
    assert "warning: 1 file(s) of run" in err and str(deleted) in err.replace("\n", "")
    assert str(kept) not in err and "(missing)" in out


def test_doctor_finds_damaged_files_stale_runs_and_a_damaged_database(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def doctor(*flags: str) -> tuple[int, str, str]:
        return cli_main(monkeypatch, capsys, "--home", str(ws.home), *flags, "doctor")

    code, out, err = doctor()
    assert code == 0 and "registry sound" in out, err
    reg = Registry.open(ws)
    run = reg.create_run(kind="pretrain", name="files", config={}, seed=0)
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(b"weights")
    from crmse_cli.fileio import sha256_file

    reg.add_checkpoint(run.id, path=str(ckpt), sha256=sha256_file(ckpt), step=1, format_version=1, tag="last")
    reg.add_artifact(run.id, kind="samples", path=str(tmp_path / "gone.npz"), sha256="0" * 64)
    reg.set_status(run.id, "completed")
    stale = _stale_running_run(reg)
    ckpt.write_bytes(b"weightz")
    code, out, _ = doctor("--json")
    assert code == 1
    import json

    report = json.loads(out)
    messages = [(f["level"], f["subject"], f["message"]) for f in report["findings"]]
    assert (
        "error",
        f"run {run.id}",
        f"last checkpoint {ckpt} does not match its recorded checksum",
    ) in messages
    assert ("error", f"run {run.id}", f"samples file {tmp_path / 'gone.npz'} is missing") in messages
    assert any(level == "warning" and subject == f"run {stale}" for level, subject, _ in messages)
    assert Registry.open(ws).get_run(stale).status == "running"  # doctor changes nothing
    reg.close()
    for i in range(8):  # grow the file past a few pages, then damage it
        r = reg.create_run(kind="pretrain", name=f"r{i}x", config={}, seed=0)
        reg.log_metrics(r.id, [Metric(name="loss", value=float(j), unit="1", step=j) for j in range(300)])
    reg.close()
    _damage_pages(ws.home / "crmse.db")
    code, out, _ = doctor()
    assert code == 1 and "registry" in out and "backup" in out
