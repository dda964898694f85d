"""The `crmse` console script, run as a user runs it: help, JSON output, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from crmse_cli.registry.store import Registry
from crmse_cli.workspace import Workspace

SCRIPT = Path(sys.executable).with_name("crmse")  # [project.scripts] crmse = crmse_cli.cli.app:main
EXPECTED = ("runs", "show", "datasets", "fetch", "pretrain", "sample", "evaluate", "regularize", "reproduce")
EXPECTED += ("diagnose", "table")
EXPECTED += ("doctor",)


def crmse(
    home: Path, *args: str, timeout: float = 120, columns: int = 100
) -> subprocess.CompletedProcess[str]:
    cmd = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "crmse_cli.cli.app"]
    env = {
        **os.environ,
        "CRMSE_HOME": str(home),
        "CRMSE_NO_PROGRESS": "1",
        "CRMSE_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "COLUMNS": str(columns),
    }
    env.pop("CRMSE_DB_URL", None)
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=timeout)


def _command_paths() -> list[tuple[str, ...]]:
    """Every command and sub-command of the app, as argv prefixes."""
    from crmse_cli.cli import app as app_module

    app_module._register()
    root = typer.main.get_command(app_module.app)

    def walk(cmd: object, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
        out = [prefix]
        if hasattr(cmd, "commands"):  # a group (typer vendors click: no isinstance check)
            for name, sub in cmd.commands.items():
                out += walk(sub, (*prefix, name))
        return out

    return walk(root, ())


def _one_line_error(proc: subprocess.CompletedProcess[str], *must: str) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for text in must:
        assert text in lines[0]
    return lines[0]


def test_help_lists_the_commands(tmp_path: Path) -> None:
    proc = crmse(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    for name in EXPECTED:
        assert f" {name} " in proc.stdout, name
    version = crmse(tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("crmse ")


def test_every_command_has_help(tmp_path: Path) -> None:
    paths = _command_paths()
    assert {p[0] for p in paths if p} >= set(EXPECTED)
    assert ("fetch", "rmd17") in paths and ("fetch", "xyz") in paths
    for path in paths:
        proc = crmse(tmp_path, *path, "--help")
        assert proc.returncode == 0, (path, proc.stderr)
        assert "Usage:" in proc.stdout and "Traceback" not in proc.stderr
    assert not (tmp_path / "crmse.db").exists()  # help touches no database


def test_empty_home_gives_json_lists(tmp_path: Path) -> None:
    for command in ("runs", "datasets"):
        proc = crmse(tmp_path, "--json", command)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == []
    proc = crmse(tmp_path, "runs")
    assert proc.returncode == 0 and "no runs yet" in proc.stdout


def test_runs_table_fits_narrow_and_wide_terminals(tmp_path: Path) -> None:
    reg = Registry.open(Workspace.resolve(tmp_path))
    reg.create_run(kind="regularize", name="eth-n1000-s0-crmse-lambda0.015", config={}, seed=0)
    reg.close()
    narrow = crmse(tmp_path, "runs", columns=80).stdout
    assert "eth-n1000-s0-crmse-lambda0.015" in narrow  # the name is not folded into pieces
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert "started" not in narrow.split("eth-n1000")[0].splitlines()[-1]
    wide = crmse(tmp_path, "runs", columns=160).stdout
    header = next(line for line in wide.splitlines() if " name " in line)
    assert "parent" in header and "started" in header


def test_runs_and_show_json(tmp_path: Path) -> None:
    reg = Registry.open(Workspace.resolve(tmp_path))
    run = reg.create_run(kind="pretrain", name="mse-x", config={"lr": 0.001}, seed=1)
    reg.log_metric(run.id, name="test_force_mae", value=0.25, unit="kcal/mol/A")
    reg.close()
    runs = json.loads(crmse(tmp_path, "--json", "runs").stdout)
    assert json.loads(crmse(tmp_path, "runs", "--json").stdout) == runs  # global flag after the command
    assert [(r["id"], r["name"], r["metrics"]) for r in runs] == [(run.id, "mse-x", {"test_force_mae": 0.25})]
    for ref in ("mse-x", run.id[:6]):
        proc = crmse(tmp_path, "--json", "show", ref)
        assert proc.returncode == 0, proc.stderr
        shown = json.loads(proc.stdout)
        assert shown["run"]["id"] == run.id and shown["run"]["config"] == {"lr": 0.001}
        assert shown["metrics"]["test_force_mae"]["unit"] == "kcal/mol/A"
    table = crmse(tmp_path, "show", "mse-x")
    assert table.returncode == 0 and "test_force_mae" in table.stdout


def test_domain_errors_are_one_line(tmp_path: Path) -> None:
    line = _one_line_error(crmse(tmp_path, "fetch", "rmd17", "notamolecule"), "notamolecule", "ethanol")
    assert "choose one of" in line
    _one_line_error(crmse(tmp_path, "show", "nosuchrun"), "no run 'nosuchrun'", "crmse runs")
    _one_line_error(
        crmse(tmp_path, "fetch", "rmd17", "ethanol", "--from", str(tmp_path / "missing.tar.bz2")),
        "no such file",
    )
    bad = tmp_path / "rmd17.tar.bz2"
    bad.write_bytes(b"BZh91AY&SY" + b"\x00" * 100)  # a bz2 header, then garbage
    _one_line_error(crmse(tmp_path, "fetch", "rmd17", "ethanol", "--from", str(bad)), "download it again")
    assert json.loads(crmse(tmp_path, "--json", "datasets").stdout) == []


def test_error_messages_are_not_read_as_markup(tmp_path: Path) -> None:
    # run names and paths are user text: "[/]" must not crash rich, "[red]" must not vanish
    _one_line_error(crmse(tmp_path, "show", "[/]"), "no run '[/]'")
    odd = tmp_path / "[red]data" / "x.tar.bz2"
    _one_line_error(crmse(tmp_path, "fetch", "rmd17", "ethanol", "--from", str(odd)), "[red]data")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = crmse(tmp_path, "--debug", "show", "nosuchrun")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "NotFoundError: no run 'nosuchrun'" in proc.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    proc = crmse(tmp_path, "show")  # missing argument: click's usage error, not a traceback
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = crmse(tmp_path, "no-such-command")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_fetch_tiny_archive_through_the_cli(tmp_path: Path) -> None:
    from test_fetch import N_FRAMES, make_archive

    archive = make_archive(tmp_path / "rmd17.tar.bz2")
    home = tmp_path / "home"
    proc = crmse(home, "--json", "fetch", "rmd17", "ethanol", "--from", str(archive))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["name"], result["n_frames"], result["already"]) == ("ethanol", N_FRAMES, False)
    again = crmse(home, "fetch", "rmd17", "ethanol", "--from", str(archive))
    assert again.returncode == 0 and "already fetched" in again.stdout
    odd = tmp_path / "[bold]in" / "rmd17.tar.bz2"  # printed paths keep their brackets
    odd.parent.mkdir()
    archive.rename(odd)
    forced = crmse(home, "fetch", "rmd17", "ethanol", "--from", str(odd), "--force")
    assert forced.returncode == 0 and "[bold]in" in forced.stdout.replace("\n", "")
    [ds] = json.loads(crmse(home, "--json", "datasets").stdout)
    assert ds["name"] == "ethanol" and ds["units"]["energy"] == "kcal/mol"
