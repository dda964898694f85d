"""`crmse fetch xtb` as a user meets it: settings refused up front, and signals that stop it at once.

Issue 28: NaN/inf settings, ``--processes 0`` and ``--frames 1e15`` ran (and left a cache folder);
SIGTERM and Ctrl-C did not reach the workers, and SIGKILL of the parent left them running.
"""

from __future__ import annotations

import math
from pathlib import Path

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
