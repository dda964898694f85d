"""Foreseeable faults end in one line, not `internal error` (issue 28, items 12, 13, 16, 17).

A damaged schema table, malformed config files and exports, killed xTB workers, truncated
replica checkpoints, unusable or unreachable registry URLs, full disks, a workspace doctor that
must refuse what the other commands refuse, and read-only workspaces that can still be read.
"""

from __future__ import annotations

import errno
import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from synthetic import cli_main, make_workspace, one_line_error, tiny_pretrain

from crmse_cli.errors import DataError, DiskFullError
from crmse_cli.metric import Metric
from crmse_cli.registry.store import Registry
from crmse_cli.registry.sweeps import QueuedJob
from crmse_cli.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.delenv("CRMSE_DB_URL", raising=False)
    monkeypatch.setenv("CRMSE_NO_PROGRESS", "1")
    return make_workspace(tmp_path / "home")


def _crmse(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], ws: Workspace, *args: str
) -> tuple[int, str, str]:
    return cli_main(monkeypatch, capsys, "--home", str(ws.home), *args)


def _run_count(ws: Workspace) -> int:
    with sqlite3.connect(ws.home / "crmse.db") as conn:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])


# -- item 12: registry schema, config files, exports, sweeps -------------------------------------


def test_a_second_alembic_version_row_is_one_line(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(ws.home / "crmse.db") as conn:
        conn.execute("INSERT INTO alembic_version VALUES ('0001')")
    for cmd in (("runs",), ("pretrain", "--dataset", "ethanol")):
        one_line_error(_crmse(monkeypatch, capsys, ws, *cmd), "alembic_version", "2 schema versions")
    assert _run_count(ws) == 0


@pytest.mark.parametrize("text", ['[["lr", 0.1]]', "[1, 2]", '"lr"', "3"])
def test_a_json_config_that_is_not_an_object_is_one_line(
    ws: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
) -> None:
    path = tmp_path / "settings.json"
    path.write_text(text)
    result = _crmse(monkeypatch, capsys, ws, "pretrain", "--dataset", "ethanol", "--config", str(path))
    one_line_error(result, str(path), "not an object")
    assert _run_count(ws) == 0


def _export(tmp_path: Path, runs: list[dict[str, Any]]) -> Path:
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"format": "crmse-metrics/1", "runs": runs}))
    return path


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ({"name": "noid", "metrics": {"test_force_mae": [0.5, "kcal/mol/A"]}}, "a run without an id"),
        ({"id": "abcd1234", "name": "x1", "metrics": {"test_force_mae": ["abc", "u"]}}, "not [number, unit]"),
        ({"id": "abcd1234", "name": "x1", "metrics": {"test_force_mae": 0.5}}, "not [number, unit]"),
        ({"id": "abcd1234", "name": "x1", "metrics": {"test_force_mae": [None, "u"]}}, "not [number, unit]"),
    ],
)
def test_table_include_of_a_malformed_export_is_one_line(
    ws: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    run: dict[str, Any],
    message: str,
) -> None:
    path = _export(tmp_path, [run])
    ref = run.get("id") or run["name"]
    one_line_error(_crmse(monkeypatch, capsys, ws, "table", "--include", str(path), ref), str(path), message)


def test_sweep_status_on_a_job_without_params_is_one_line(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = Registry.open(ws)
    src = reg.create_run(kind="pretrain", name="src", config={}, seed=0)
    job = QueuedJob(name="bad.r0", parent=src.id, seed=0, config={}, params={"i": 0})
    reg.create_sweep(name="bad", config={}, jobs=[job])
    reg.close()
    one_line_error(_crmse(monkeypatch, capsys, ws, "sweep", "status", "bad"), "grid point 0", "lambda")


# -- item 12: xTB workers and replica checkpoints ------------------------------------------------


def test_a_killed_xtb_worker_is_one_line_and_the_rerun_continues(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tblite")
    from concurrent.futures.process import BrokenProcessPool

    import crmse_cli.stages.fetch_xtb as fetch_xtb

    def killed(tasks: list[Any], *args: Any, **kwargs: Any) -> list[Any]:
        raise BrokenProcessPool("A process in the process pool was terminated abruptly")

    monkeypatch.setattr(fetch_xtb, "run_replicas", killed)
    cmd = ("fetch", "xtb", "ethanol", "--frames", "4", "--replicas", "2", "--name", "eth-xtb")
    line = one_line_error(_crmse(monkeypatch, capsys, ws, *cmd), "xTB worker process died", "rerun the same")
    cache = ws.cache_dir / "xtb" / "eth-xtb"
    assert str(cache) in line and (cache / "key.txt").is_file()  # the rerun continues from here
    assert Registry.open(ws).find_dataset("eth-xtb") is None


def test_a_truncated_xtb_replica_checkpoint_names_the_file(tmp_path: Path) -> None:
    from crmse_cli.data.xtb_md import _FRAME_KEYS, _load, _save, _State

    path = tmp_path / "replica-000.npz"
    x = np.zeros((3, 3))
    state = _State(x, x, x, 0.0, 10, {"state": 1}, 0, {k: [] for k in _FRAME_KEYS})
    _save(str(path), state, "key")
    assert _load(str(path), "key", 3).step == 10
    path.write_bytes(path.read_bytes()[:300])  # what a full disk or a cut copy leaves
    with pytest.raises(DataError) as info:
        _load(str(path), "key", 3)
    message = str(info.value)
    assert str(path) in message and "delete it to restart that replica" in message
    assert "\n" not in message


# -- item 12: registry URLs and servers ----------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _urls() -> list[Any]:
    import importlib.util

    no_psycopg = importlib.util.find_spec("psycopg") is None
    mysql = importlib.util.find_spec("MySQLdb") is not None
    return [
        pytest.param("not a url://u:secret@h/db", "is not usable", id="unparsable"),
        pytest.param("postgresql+nosuchdriver://u:secret@h/db", "is not usable", id="unknown-driver"),
        pytest.param(
            "mysql+mysqldb://u:secret@h/db",
            "is not installed",
            id="missing-driver",
            marks=pytest.mark.skipif(mysql, reason="MySQLdb is installed here"),
        ),  # fmt: skip
        pytest.param(
            f"postgresql+psycopg://u:secret@127.0.0.1:{_closed_port()}/db",
            "Connection refused",
            id="wrong-port",
            marks=pytest.mark.skipif(no_psycopg, reason="psycopg (the postgres extra) is not installed"),
        ),  # fmt: skip
    ]


@pytest.mark.parametrize(("url", "message"), _urls())
def test_an_unusable_registry_url_is_one_line_with_the_password_masked(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    message: str,
) -> None:
    monkeypatch.setenv("CRMSE_DB_URL", url)
    for cmd in (("runs",), ("pretrain", "--dataset", "ethanol"), ("doctor",)):
        line = one_line_error(cli_main(monkeypatch, capsys, "--home", str(tmp_path / "h"), *cmd), message)
        assert "secret" not in line and "u:***@" in line


def test_a_missing_postgresql_database_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], pg_server: str
) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(pg_server).set(database="crmse_no_such_database").render_as_string(hide_password=False)
    monkeypatch.setenv("CRMSE_DB_URL", url)
    result = cli_main(monkeypatch, capsys, "--home", str(tmp_path / "h"), "runs")
    one_line_error(result, "crmse_no_such_database", "does not exist", "CRMSE_DB_URL")


def test_a_database_server_gone_mid_run_is_one_line() -> None:
    from sqlalchemy.exc import OperationalError

    from crmse_cli.registry.engine import server_error

    url = "postgresql+psycopg://me:secret@db.example:5432/crmse"
    gone = OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly\nmore"))
    error = server_error(gone, url)
    assert error is not None
    assert "server closed the connection" in str(error) and "secret" not in str(error)
    assert "me:***@db.example" in str(error) and "\n" not in str(error)
    deadlock = OperationalError("UPDATE", {}, Exception("deadlock detected"))
    assert server_error(deadlock, url) is None  # retried by the callers, not translated


# -- item 12 and 13: full disks --------------------------------------------------------------------


def _no_space(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_during_fetch_is_one_line_and_registers_nothing(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    xyz = tmp_path / "h2.xyz"
    frames = []
    for k in range(6):
        frames += ["2", f'Properties=species:S:1:pos:R:3:forces:R:3 energy={-1.0 - 0.01 * k} pbc="F F F"']
        frames += [f"H 0.0 0.0 {0.01 * k} 0.0 0.0 0.1", "H 0.0 0.0 0.74 0.0 0.0 -0.1"]
    xyz.write_text("\n".join(frames) + "\n")

    def full(fh: Any, **arrays: Any) -> None:
        fh.write(b"PK" * 100)  # part of the file, then the device is full
        _no_space()

    monkeypatch.setattr("crmse_cli.data.dataset.np.savez", full)
    cmd = ("fetch", "xyz", str(xyz), "--name", "h2", "--energy-unit", "eV")
    line = one_line_error(_crmse(monkeypatch, capsys, ws, *cmd), "no space left on device writing")
    assert str(ws.datasets_dir) in line
    assert Registry.open(ws).find_dataset("h2") is None
    assert sorted(p.name for p in ws.datasets_dir.iterdir()) == ["ethanol.npz"]  # no temp file left


def test_a_full_disk_in_a_write_no_stage_names_is_still_one_line(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(ws.cache_dir / "scratch"))

    monkeypatch.setattr("crmse_cli.stages.fetch.read_xyz", full)
    (tmp_path / "a.xyz").write_text("1\nenergy=1.0\nH 0 0 0\n")
    cmd = ("fetch", "xyz", str(tmp_path / "a.xyz"), "--name", "a", "--energy-unit", "eV")
    one_line_error(_crmse(monkeypatch, capsys, ws, *cmd), f"no space left on device writing {ws.cache_dir}")
    assert Registry.open(ws).find_dataset("a") is None


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_a_full_disk_during_a_download_is_not_a_network_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from crmse_cli.data import download

    class Response(io.BytesIO):
        status = 200
        headers: dict[str, str] = {}

    monkeypatch.setattr(download.urllib.request, "urlopen", lambda *a, **k: Response(b"x" * 200_000))
    with pytest.raises(DiskFullError, match="no space left on device writing /dev/full"):
        download._transfer("https://example.org/a.tar", Path("/dev/full"), None, 5.0)  # writes: ENOSPC


def test_a_full_disk_during_pretrain_interrupts_the_run_with_how_to_resume(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import crmse_cli.model.checkpoint as checkpoint

    real_save = torch.save
    saves: list[str] = []

    def save(obj: Any, fh: Any, *args: Any, **kwargs: Any) -> None:
        saves.append(str(getattr(fh, "name", fh)))
        if len(saves) > 2:  # epoch 1 is saved (best, last); the disk fills during epoch 2
            fh.write(b"PK\x03\x04" * 64)
            _no_space()
        real_save(obj, fh, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    with pytest.raises(DiskFullError) as info:
        tiny_pretrain(ws, name="full")
    run = Registry.open(ws).get_run("full")
    message = str(info.value)
    assert message.startswith(f"no space left on device writing {ws.run_dir(run.id) / 'checkpoints'}")
    assert f"`crmse pretrain --resume {run.id}`" in message and "\n" not in message
    assert run.status == "interrupted" and "no space left" in (run.error or "")
    assert not [p for p in (ws.run_dir(run.id) / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(checkpoint.torch, "save", real_save)  # space freed: the run continues
    from crmse_cli.stages.pretrain import pretrain

    pretrain(ws, resume=run.id, progress=False)
    assert Registry.open(ws).get_run(run.id).status == "completed"


def test_a_full_disk_that_also_stops_the_registry_does_not_claim_the_run_was_marked() -> None:
    from crmse_cli.stages._run import tracked

    class FullRegistry:
        def get_run(self, run_id: str) -> Any:
            return type("Run", (), {"kind": "pretrain"})()

        def set_status(self, *args: Any, **kwargs: Any) -> None:
            raise DiskFullError("/home/crmse.db")

    with pytest.raises(DiskFullError) as info, tracked(FullRegistry(), "abcd1234"):  # type: ignore[arg-type]
        raise DiskFullError("/home/runs/abcd1234/checkpoints/last.pt")
    message = str(info.value)
    assert message.startswith("no space left on device writing /home/runs/abcd1234/checkpoints/last.pt")
    assert "`crmse pretrain --resume abcd1234`" in message
    assert "`crmse runs` marks run abcd1234 interrupted once this process has ended" in message


def test_a_full_registry_disk_says_so(ws: Workspace) -> None:
    from sqlalchemy import event

    reg = Registry.open(ws)
    run = reg.create_run(kind="pretrain", name="big", config={}, seed=0)
    with reg.engine.connect() as conn:
        pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
    reg.engine.dispose()

    def cap(dbapi_conn: Any, _record: Any) -> None:  # SQLite's own SQLITE_FULL, as on a full disk
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages + 2}")

    event.listen(reg.engine, "connect", cap)
    rows = [Metric(name="loss", value=float(i), unit="1", step=i) for i in range(5000)]
    with pytest.raises(DiskFullError, match=f"no space left on device writing {ws.home / 'crmse.db'}"):
        reg.log_metrics(run.id, rows)
    reg.close()


# -- item 16: doctor refuses what the other commands refuse ------------------------------------------


@pytest.mark.parametrize("case", ["db-is-a-folder", "home-is-a-file"])
def test_doctor_fails_on_a_workspace_the_other_commands_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    monkeypatch.delenv("CRMSE_DB_URL", raising=False)
    home = tmp_path / "home"
    if case == "db-is-a-folder":
        (home / "crmse.db").mkdir(parents=True)
    else:
        home.write_text("a file")
    monkeypatch.setenv("CRMSE_HOME", str(home))
    refused = one_line_error(cli_main(monkeypatch, capsys, "runs"), str(home))
    code, out, err = cli_main(monkeypatch, capsys, "--json", "doctor")
    assert code == 1, (out, err)
    report = json.loads(out)
    assert not report["ok"]
    assert [f["message"] for f in report["findings"]] == [refused.removeprefix("error: ")]


# -- item 17: read-only workspaces still read ----------------------------------------------------------


def _finished_sweep(ws: Workspace) -> str:
    """A sweep of one grid point whose regularize, sample and evaluate runs completed."""
    reg = Registry.open(ws)
    src = reg.create_run(kind="pretrain", name="src", config={}, seed=0)
    reg.set_status(src.id, "completed")
    params = {"source": src.id, "lambda": 0.01, "seed": 0}
    reg.create_sweep(
        name="grid",
        config={},
        jobs=[QueuedJob(name="grid.r0", parent=src.id, seed=0, config={}, params=params)],
    )
    job = reg.sweep_jobs("grid")[0]
    reg.set_status(job.run_id, "completed")
    smp = reg.create_run(kind="sample", parent=job.run_id, config={}, seed=0)
    reg.set_status(smp.id, "completed")
    ev = reg.create_run(kind="evaluate", name="ev", parent=smp.id, config={}, seed=0)
    reg.log_metric(ev.id, name="test_force_mae", value=0.5, unit="kcal/mol/A")
    reg.set_status(ev.id, "completed")
    reg.close()
    return ev.id


@pytest.mark.slow
def test_table_and_sweep_reads_work_in_a_read_only_workspace(ws: Workspace, tmp_path: Path) -> None:
    from test_faults import _read_only

    _finished_sweep(ws)
    table = _read_only(ws.home, "table", "ev")
    assert table.returncode == 0 and "0.5" in table.stdout, table.stderr
    listed = _read_only(ws.home, "--json", "sweep", "list")
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["queued"] == 1, listed.stderr
    status = _read_only(ws.home, "--json", "sweep", "status", "grid")
    assert status.returncode == 0 and json.loads(status.stdout)[0]["stage"] == "done", status.stderr
    out = tmp_path / "report.html"  # outside the read-only workspace
    report = _read_only(ws.home, "sweep", "report", "grid", "--out", str(out))
    assert report.returncode == 0 and out.is_file(), report.stderr
