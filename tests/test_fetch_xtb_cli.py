"""`crmse fetch xtb` as a user meets it: settings refused up front, and signals that stop it at once.

Issue 28: NaN/inf settings, ``--processes 0`` and ``--frames 1e15`` ran (and left a cache folder);
SIGTERM and Ctrl-C did not reach the workers, and SIGKILL of the parent left them running.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from synthetic import cli_main, one_line_error

from crmse_cli.errors import CrmseError
from crmse_cli.workspace import Workspace

# -- settings (issue 28 #8) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--temperature-K", "nan"], "--temperature-K must be a finite number, got nan"),
        (["--temperature-K", "inf"], "--temperature-K must be a finite number, got inf"),
        (["--temperature-K", "-5"], "--temperature-K must be in"),
        (["--friction-per-fs", "nan"], "--friction-per-fs must be a finite number"),
        (["--friction-per-fs", "-1"], "--friction-per-fs must be in"),
        (["--timestep-fs", "inf"], "--timestep-fs must be a finite number"),
        (["--timestep-fs", "0"], "--timestep-fs must be in"),
        (["--equilibration-ps", "nan"], "--equilibration-ps must be a finite number"),
        (["--equilibration-ps", "-1"], "--equilibration-ps must be in"),
        (["--processes", "0"], "--processes must be in [1, 1024], got 0"),
        (["--processes", "-3"], "--processes must be in [1, 1024], got -3"),
        (["--frames", str(10**15)], "--frames must be in [3, 1000000]"),
        (["--frames", "2"], "--frames must be in [3, 1000000]"),
        (["--stride", "0"], "--stride must be in"),
        (["--replicas", "0"], "--replicas must be in"),
        (["--seed", "-1"], "--seed must be >= 0"),
    ],
)
def test_bad_settings_are_one_line_and_leave_no_folder(
    tmp_path: Path,
    args: list[str],
    match: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("CRMSE_DB_URL", raising=False)
    home = tmp_path / "home"
    res = cli_main(monkeypatch, capsys, "--home", str(home), "fetch", "xtb", "ethanol", *args)
    assert res[0] == 1
    one_line_error(res, match)
    assert not home.exists()  # no cache folder, no registry


@pytest.mark.parametrize("processes", ["0", "-3", "5000"])
def test_reproduce_refuses_bad_processes_before_anything(
    tmp_path: Path, processes: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CRMSE_DB_URL", raising=False)
    home = tmp_path / "home"
    res = cli_main(
        monkeypatch, capsys, "--home", str(home), "reproduce", "ethanol-xtb", "--processes", processes
    )
    assert res[0] == 1
    one_line_error(res, "--processes must be in [1, 1024]")
    assert not home.exists()


def test_frames_written_as_a_float_are_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    code, _, err = cli_main(
        monkeypatch, capsys, "--home", str(home), "fetch", "xtb", "ethanol", "--frames", "1e15"
    )
    assert code == 2 and "--frames" in err and "Traceback" not in err
    assert not home.exists()


def test_the_library_refuses_the_same_settings(tmp_path: Path) -> None:
    from crmse_cli.data.xtb_config import XtbMDConfig
    from crmse_cli.stages.fetch_xtb import fetch_xtb

    for bad in (
        {"temperature_K": math.nan},
        {"friction_per_fs": math.inf},
        {"timestep_fs": math.nan},
        {"equilibration_ps": math.inf},
        {"frames": 10**6 + 1},
        {"frames": 12.0},
        {"checkpoint_every_s": math.nan},
    ):
        with pytest.raises(CrmseError):
            XtbMDConfig(**bad)  # type: ignore[arg-type]
    assert XtbMDConfig(frames=10**6).frames == 10**6
    ws = Workspace(tmp_path / "home")
    cfg = XtbMDConfig(frames=4, stride=5, equilibration_ps=0.005)
    for processes in (0, -3):
        with pytest.raises(CrmseError, match="--processes must be in"):
            fetch_xtb(ws, "ethanol", cfg, processes=processes)
    assert not ws.home.exists()


# -- signals (issue 28 #3) --------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
needs_tblite_on_linux = pytest.mark.skipif(
    __import__("importlib").util.find_spec("tblite") is None or not Path("/proc/self/stat").exists(),
    reason="needs tblite (the xtb extra) and Linux's /proc",
)


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the workers and multiprocessing's resource tracker)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _endless_generation(home: Path) -> tuple[subprocess.Popen[str], list[int]]:
    """A `fetch xtb` of 4 replicas on 2 processes that would run for hours; returns it once both
    workers have written a checkpoint, with its child processes."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "CRMSE_HOME": str(home), "CRMSE_NO_PROGRESS": "1",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    env.pop("CRMSE_DB_URL", None)
    cmd = [sys.executable, "-m", "crmse_cli", "fetch", "xtb", "ethanol", "--frames", "400000",
           "--replicas", "4", "--processes", "2", "--stride", "5", "--equilibration-ps", "0.005",
           "--name", "endless"]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives it: Ctrl-C reaches all
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    folder = home / "cache" / "xtb" / "endless"
    deadline = time.monotonic() + 300
    while not all((folder / f"replica-{k:03d}.npz").is_file() for k in (0, 1)):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the workers never wrote a checkpoint"
        time.sleep(0.2)
    return proc, _children(proc.pid)


def _gone(pids: list[int], within_s: float = 60.0) -> bool:
    deadline = time.monotonic() + within_s
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.slow
@needs_tblite_on_linux
@pytest.mark.parametrize("how", ["SIGTERM to the command", "Ctrl-C to its process group"])
def test_a_signal_stops_the_workers_at_once_and_the_rerun_continues(tmp_path: Path, how: str) -> None:
    home = tmp_path / "home"
    proc, children = _endless_generation(home)
    workers = [p for p in children if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
    try:
        assert len(workers) == 2, children
        if how.startswith("SIGTERM"):
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        # Before the fix the workers never heard of it and ran every remaining frame (hours).
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "rerun the same command to continue" in err and "Traceback" not in err
    assert _gone(children)
    folder = home / "cache" / "xtb" / "endless"
    assert sorted(p.name for p in folder.glob("replica-*.npz")) == ["replica-000.npz", "replica-001.npz"]
    for k in (0, 1):  # the pre-queued replicas 2 and 3 never started; 0 and 1 kept their work
        with np.load(folder / f"replica-{k:03d}.npz") as z:
            assert len(z["energies"]) > 0


@pytest.mark.slow
@needs_tblite_on_linux
def test_the_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    proc, children = _endless_generation(tmp_path / "home")
    try:
        assert len(children) >= 2
        proc.kill()
        proc.wait(timeout=30)
        assert _gone(children), [p for p in children if _alive(p)]  # no orphan keeps computing
    finally:
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
