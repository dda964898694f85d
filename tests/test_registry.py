"""The registry: schema = models, migrations, refusal of unknown schemas, SQLite settings,
concurrent writers, run lookup and metric validation. No torch needed.

Tests taking ``db_url`` run on SQLite and on PostgreSQL (a fresh database each, on the server of
``CRMSE_TEST_PG_URL`` or on one the session starts from the machine's PostgreSQL binaries; skipped,
saying what to install, without either: see conftest.py)."""

from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from crmse_cli.errors import CrmseError, NotFoundError
from crmse_cli.metric import Metric
from crmse_cli.registry.engine import (
    BUSY_TIMEOUT_MS,
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
)
from crmse_cli.registry.store import Registry
from crmse_cli.registry.tables import Base
from crmse_cli.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def reg(db_url: str):
    registry = Registry(db_url)
    yield registry
    registry.close()


def _dataset(reg: Registry, name: str = "ethanol") -> None:
    reg.add_dataset(
        name=name,
        source="file:x",
        sha256="0" * 64,
        path="/x.npz",
        n_frames=10,
        n_atoms=9,
        species=[6, 6, 8, 1, 1, 1, 1, 1, 1],
        units={"energy": "kcal/mol"},
        splits={"01": {"train": 5, "test": 5}},
        meta={"kind": "rmd17"},
    )


# -- schema and migrations --------------------------------------------------------------------


def test_fresh_database_matches_models(reg: Registry) -> None:
    assert current_revision(reg.engine) == head_revision(reg.engine)
    with reg.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"migrations and models differ: {diff}"


def test_one_head_and_rows_survive_upgrade(db_url: str) -> None:
    url = db_url
    engine = make_engine(url)
    cfg = alembic_config(engine)
    script = ScriptDirectory.from_config(cfg)
    assert len(script.get_heads()) == 1
    first = script.get_base()
    assert isinstance(first, str)
    command.upgrade(cfg, first)  # a database as the oldest crmse wrote it
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (id, name, kind, status, config, config_hash, version, host, started) "
                "VALUES ('abcd1234', 'old-run', 'pretrain', 'completed', '{\"lr\": 0.001}', 'h', '0.0', 'x', "
                "'2025-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO metrics (run_id, name, value, unit, step, time) "
                "VALUES ('abcd1234', 'test_force_mae', 0.5, 'kcal/mol/A', 3, '2025-01-01 00:00:00')"
            )
        )
    engine.dispose()

    reg = Registry(url)  # upgrades to head
    try:
        assert current_revision(reg.engine) == script.get_current_head()
        run = reg.get_run("old-run")
        assert (run.id, run.kind, run.config) == ("abcd1234", "pretrain", {"lr": 0.001})
        [m] = reg.metrics(run.id)
        assert (m.name, m.value, m.unit, m.step) == ("test_force_mae", 0.5, "kcal/mol/A", 3)
        assert run.pid is None  # the column revision 0002 added is empty for old rows
        new = reg.create_run(kind="sample", parent=run.id, config={}, seed=1)
        assert new.pid == os.getpid()
    finally:
        reg.close()

    # upgrade and stamp at head again are no-ops; reopening finds everything
    engine = make_engine(url)
    command.upgrade(alembic_config(engine), "head")
    command.stamp(alembic_config(engine), "head")
    engine.dispose()
    reg = Registry(url)
    try:
        assert [r.id for r in reg.children("abcd1234")] == [new.id]
        assert reg.final_metrics("abcd1234")["test_force_mae"].value == 0.5
    finally:
        reg.close()


def test_downgrade_to_base_and_back(db_url: str) -> None:
    url = db_url
    Registry(url).close()
    engine = make_engine(url)
    command.downgrade(alembic_config(engine), "base")
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    assert not tables & {"runs", "metrics", "datasets", "checkpoints", "artifacts", "sweeps", "sweep_jobs"}
    command.upgrade(alembic_config(engine), "head")
    engine.dispose()
    reg = Registry(url)
    assert reg.list_runs() == []
    reg.close()


def _sql(url: str, statement: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(statement))
    engine.dispose()


def test_unknown_revision_is_refused_in_one_line(db_url: str) -> None:
    Registry(db_url).close()
    _sql(db_url, "UPDATE alembic_version SET version_num = 'ffff'")
    with pytest.raises(CrmseError) as info:
        Registry(db_url)
    msg = str(info.value)
    assert "ffff" in msg and "upgrade crmse" in msg and "\n" not in msg


def test_tables_without_version_are_refused(db_url: str) -> None:
    Registry(db_url).close()
    _sql(db_url, "DROP TABLE alembic_version")
    with pytest.raises(CrmseError, match="no schema version; use a fresh --home"):
        Registry(db_url)


def test_sqlite_pragmas(tmp_path: Path) -> None:
    reg = Registry(_url(tmp_path / "crmse.db"))
    with reg.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == BUSY_TIMEOUT_MS >= 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(IntegrityError), reg.engine.begin() as conn:  # foreign keys are enforced
        conn.execute(
            text(
                "INSERT INTO metrics (run_id, name, value, unit, time) "
                "VALUES ('nosuchrun', 'x', 1.0, '1', '2025-01-01 00:00:00')"
            )
        )
    reg.close()


# -- several processes at once ------------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from crmse_cli.registry.store import Registry
    url, run_id, tag, go = sys.argv[1:5]
    Path(go + "." + tag).touch()  # ready
    while not Path(go).exists():
        time.sleep(0.005)
    reg = Registry(url)
    ids = []
    for r in range(int(sys.argv[6]) if len(sys.argv) > 6 else 1):
        rid = run_id
        if rid == "-":
            rid = reg.create_run(kind="pretrain", name=f"{{tag}}-r{{r}}", config={{"tag": tag}}, seed=r).id
        for i in range(int(sys.argv[5])):
            reg.log_metric(rid, name="loss_" + tag, value=float(i), unit="1", step=i)
        ids.append(rid)
    reg.close()
    print(" ".join(ids))
""")


def _race(tmp_path: Path, url: str, run_id: str, n_proc: int, n_metrics: int, n_runs: int = 1) -> list[str]:
    """Start ``n_proc`` writers that begin together; return their stdout; fail on any error.

    Each writer creates ``n_runs`` runs (``run_id`` "-") or uses ``run_id``, and logs
    ``n_metrics`` metric rows to each, one transaction per row."""
    go = tmp_path / "go"
    code = _CHILD.format(repo=str(REPO))
    argv = [
        [sys.executable, "-c", code, url, run_id, f"p{k}", str(go), str(n_metrics), str(n_runs)]
        for k in range(n_proc)
    ]
    procs = [subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for a in argv]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"go.p{k}").exists() for k in range(n_proc)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a writer did not start"
        time.sleep(0.01)
    go.touch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "locked" not in err.lower()
        outs.append(out.strip())
    return outs


@pytest.mark.slow
def test_two_processes_log_metrics_concurrently(tmp_path: Path, db_url: str) -> None:
    url = db_url
    reg = Registry(url)
    run = reg.create_run(kind="pretrain", config={}, seed=0)
    _race(tmp_path, url, run.id, n_proc=2, n_metrics=200)
    for tag in ("p0", "p1"):
        rows = reg.metrics(run.id, name=f"loss_{tag}")
        assert [m.step for m in rows] == list(range(200))
        assert [m.value for m in rows] == [float(i) for i in range(200)]
    reg.close()


@pytest.mark.slow
def test_processes_opening_a_fresh_database_together(tmp_path: Path, db_url: str) -> None:
    # Each one migrates the new database at the same moment: exactly one may create the tables.
    url = db_url
    ids = _race(tmp_path, url, "-", n_proc=4, n_metrics=5)
    reg = Registry(url)
    assert sorted(r.id for r in reg.list_runs()) == sorted(ids)
    assert all(len(reg.metrics(i)) == 5 for i in ids)
    reg.close()


@pytest.mark.slow
def test_four_processes_write_runs_and_metrics_at_once(tmp_path: Path, db_url: str) -> None:
    """4 writers each create 5 runs and log 30 rows to each at the same time: no row is lost."""
    Registry(db_url).close()  # migrated; the race is about the writes
    outs = _race(tmp_path, db_url, "-", n_proc=4, n_metrics=30, n_runs=5)
    reg = Registry(db_url)
    try:
        runs = reg.list_runs()
        assert sorted(r.name or "" for r in runs) == sorted(f"p{k}-r{r}" for k in range(4) for r in range(5))
        assert sorted(r.id for r in runs) == sorted(i for out in outs for i in out.split())
        for run in runs:
            tag = run.config["tag"]
            rows = reg.metrics(run.id)
            assert [(m.name, m.step, m.value) for m in rows] == [
                (f"loss_{tag}", i, float(i)) for i in range(30)
            ]
    finally:
        reg.close()


# -- runs and metrics ---------------------------------------------------------------------------


def test_run_lookup_by_prefix_and_name(reg: Registry) -> None:
    runs = [reg.create_run(kind="pretrain", config={"i": i}, seed=i) for i in range(17)]
    named = reg.create_run(kind="sample", name="baseline-x", parent=runs[0].id, config={}, seed=None)
    ids = [r.id for r in runs] + [named.id]
    assert len(set(ids)) == len(ids) and all(len(i) == 8 for i in ids)

    assert reg.get_run("baseline-x") == named
    assert reg.get_run(f"  {named.id} ") == named
    for run in runs[:5]:  # the shortest unique prefix finds the run
        n = next(n for n in range(1, 9) if sum(i.startswith(run.id[:n]) for i in ids) == 1)
        assert reg.get_run(run.id[:n]).id == run.id

    # 18 ids over 16 hex digits: some first digit is shared
    shared = next(c for c in "0123456789abcdef" if sum(i.startswith(c) for i in ids) > 1)
    with pytest.raises(CrmseError, match="ambiguous") as info:
        reg.get_run(shared)
    assert not isinstance(info.value, NotFoundError)
    with pytest.raises(NotFoundError, match="crmse runs"):
        reg.get_run("no-such-run")
    with pytest.raises(NotFoundError):
        reg.get_run("")
    with pytest.raises(NotFoundError):
        reg.get_run("%")  # LIKE wildcards are escaped


def test_run_names_are_unique_and_not_id_like(reg: Registry) -> None:
    reg.create_run(kind="pretrain", name="base", config={}, seed=0)
    with pytest.raises(CrmseError, match="already exists"):
        reg.create_run(kind="pretrain", name="base", config={}, seed=0)
    for bad in ("", "  ", "deadbeef", "0123"):
        with pytest.raises(CrmseError, match="look like a run id"):
            reg.create_run(kind="pretrain", name=bad, config={}, seed=0)
    with pytest.raises(CrmseError, match="unknown run kind"):
        reg.create_run(kind="party", config={}, seed=0)
    assert [r.name for r in reg.list_runs()] == ["base"]


def test_status_and_config_round_trip(reg: Registry) -> None:
    run = reg.create_run(kind="pretrain", config={"path": Path("/a"), "nested": {"x": 1}}, seed=3)
    assert run.status == "running" and run.ended is None
    assert run.config == {"path": "/a", "nested": {"x": 1}}
    reg.set_status(run.id, "failed", error="boom")
    got = reg.get_run(run.id)
    assert (got.status, got.error) == ("failed", "boom") and got.ended is not None
    with pytest.raises(CrmseError):
        reg.set_status(run.id, "exploded")
    with pytest.raises(NotFoundError):
        reg.set_status("ffffffff", "completed")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_log_metric_refuses_non_finite(reg: Registry, bad: float) -> None:
    run = reg.create_run(kind="pretrain", config={}, seed=0)
    with pytest.raises(CrmseError, match="finite"):
        reg.log_metric(run.id, name="loss", value=bad, unit="1", step=0)
    with pytest.raises(CrmseError, match="finite"):  # a batch with one bad value writes nothing
        reg.log_metrics(
            run.id, [Metric(name="a", value=1.0, unit="1"), Metric(name="b", value=bad, unit="1")]
        )
    assert reg.metrics(run.id) == []


def test_final_metrics_take_the_last_step(reg: Registry) -> None:
    run = reg.create_run(kind="pretrain", config={}, seed=0)
    reg.log_metrics(
        run.id,
        [
            Metric(name="loss", value=3.0, unit="1", step=5),
            Metric(name="loss", value=1.0, unit="1", step=9),
            Metric(name="loss", value=2.0, unit="1", step=7),
        ],
    )
    assert reg.final_metrics(run.id)["loss"].value == 1.0
    assert [m.step for m in reg.metrics(run.id, name="loss")] == [5, 7, 9]


def test_datasets_replace_by_name(reg: Registry) -> None:
    _dataset(reg)
    _dataset(reg)
    [info] = reg.list_datasets()
    assert info.species == [6, 6, 8, 1, 1, 1, 1, 1, 1] and info.splits == {"01": {"train": 5, "test": 5}}
    assert reg.find_dataset("nope") is None
    with pytest.raises(NotFoundError, match="crmse fetch"):
        reg.get_dataset("nope")


def test_crmse_db_url_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "elsewhere" / "other.db"
    ws = Workspace.resolve(tmp_path / "home")
    monkeypatch.setenv("CRMSE_DB_URL", _url(other))
    reg = Registry.open(ws)
    run = reg.create_run(kind="pretrain", name="via-env", config={}, seed=0)
    reg.close()
    assert other.is_file()
    assert not (ws.home / "crmse.db").exists()

    monkeypatch.delenv("CRMSE_DB_URL")
    reg = Registry.open(ws)  # the workspace's own database knows nothing of it
    assert reg.list_runs() == []
    reg.close()
    monkeypatch.setenv("CRMSE_DB_URL", _url(other))
    reg = Registry.open(ws)
    assert reg.get_run("via-env").id == run.id
    reg.close()


def test_the_command_line_uses_a_postgresql_crmse_db_url(tmp_path: Path, pg_server: str) -> None:
    """Every command opens the registry through CRMSE_DB_URL; `crmse runs` and `crmse show` here."""
    from conftest import fresh_pg_database

    url, drop = fresh_pg_database(pg_server)
    try:
        reg = Registry(url)
        run = reg.create_run(kind="pretrain", name="on-postgres", config={"dataset": "x"}, seed=0)
        reg.log_metric(run.id, name="test_force_mae", value=0.25, unit="kcal/mol/A", split="test")
        reg.set_status(run.id, "completed")
        reg.close()
        env = {**os.environ, "CRMSE_DB_URL": url, "PYTHONPATH": str(REPO), "CRMSE_NO_PROGRESS": "1"}
        for cmd in (["runs"], ["show", "on-postgres"]):
            proc = subprocess.run(
                [sys.executable, "-m", "crmse_cli", "--home", str(tmp_path / "h"), "--json", *cmd],
                capture_output=True, text=True, env=env, timeout=120,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            assert run.id in proc.stdout
        assert not (tmp_path / "h" / "crmse.db").exists()
    finally:
        drop()  # type: ignore[operator]


def test_a_killed_run_is_marked_interrupted(db_url: str) -> None:
    """A run whose process died without closing it (SIGKILL) is reaped; a live one is not."""
    reg = Registry(db_url)
    try:
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        killed = reg.create_run(kind="pretrain", name="killed", config={}, seed=0)
        reg.create_run(kind="pretrain", name="live", config={}, seed=0)
        with reg.engine.begin() as conn:
            conn.execute(
                text("UPDATE runs SET pid = :pid WHERE id = :id"), {"pid": int(dead.stdout), "id": killed.id}
            )
        assert reg.reap_stale() == [killed.id]
        after = reg.get_run("killed")
        assert after.status == "interrupted" and "--resume" in (after.error or "")
        assert reg.get_run("live").status == "running"
        reg.set_status(killed.id, "running")  # resumed by this process: it owns the run now
        assert reg.get_run("killed").pid == os.getpid()
        assert reg.reap_stale() == []
    finally:
        reg.close()


def test_metrics_of_a_missing_run_fail_in_one_line(db_url: str) -> None:
    reg = Registry(db_url)
    try:
        with pytest.raises(NotFoundError, match="no run deadbeef"):
            reg.log_metric("deadbeef", name="x", value=1.0, unit="1")
    finally:
        reg.close()


# -- constraints (revision 0004) -----------------------------------------------------------------


def _schema_sql(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as con:
        return dict(con.execute("SELECT name, sql FROM sqlite_master WHERE type='table'").fetchall())


def _insert_run(conn, run_id: str, kind: str = "pretrain", status: str = "completed") -> None:  # noqa: ANN001
    conn.execute(
        text(
            "INSERT INTO runs (id, kind, status, config, config_hash, version, host, started) "
            f"VALUES ('{run_id}', '{kind}', '{status}', '{{}}', 'h', '0.0', 'x', '2025-01-01 00:00:00')"
        )
    )


def test_run_kinds_and_statuses_are_check_constraints(tmp_path: Path) -> None:
    reg = Registry(_url(tmp_path / "crmse.db"))  # SQLite: its schema text and error messages
    sql = _schema_sql(tmp_path / "crmse.db")
    for name in ("pk_runs", "uq_runs_name", "fk_runs_parent_runs", "ck_runs_kind", "ck_runs_status"):
        assert f"CONSTRAINT {name}" in sql["runs"], name
    assert (
        "CONSTRAINT fk_metrics_run_id_runs" in sql["metrics"] and "CONSTRAINT pk_datasets" in sql["datasets"]
    )
    for kind, status in (("bogus", "completed"), ("pretrain", "done")):
        with pytest.raises(IntegrityError, match="CHECK constraint failed"), reg.engine.begin() as conn:
            _insert_run(conn, "abcd0001", kind, status)
    with reg.engine.begin() as conn:
        _insert_run(conn, "abcd0002")  # the constraint admits what the registry writes
    assert reg.get_run("abcd0002").kind == "pretrain"
    reg.close()


def _database_at(url: str, revision: str) -> None:
    engine = make_engine(url)
    command.upgrade(alembic_config(engine), revision)
    engine.dispose()


def test_upgrade_to_0004_keeps_rows_and_foreign_keys(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    _database_at(_url(db), "0003")
    assert "ck_runs_kind" not in _schema_sql(db)["runs"]
    engine = make_engine(_url(db))
    with engine.begin() as conn:
        _insert_run(conn, "abcd1234")
        conn.execute(text("UPDATE runs SET name = 'old' WHERE id = 'abcd1234'"))
        conn.execute(
            text(
                "INSERT INTO metrics (run_id, name, value, unit, step, time) "
                "VALUES ('abcd1234', 'loss', 0.5, '1', 1, '2025-01-01 00:00:00')"
            )
        )
    engine.dispose()

    reg = Registry(_url(db))  # rebuilds every table with foreign keys off, then turns them on
    try:
        assert current_revision(reg.engine) == "0004" == head_revision(reg.engine)
        assert "CONSTRAINT ck_runs_kind" in _schema_sql(db)["runs"]
        assert reg.get_run("old").id == "abcd1234" and reg.metrics("abcd1234")[0].value == 0.5
        with reg.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        with pytest.raises(NotFoundError):
            reg.log_metric("nosuchrun", name="x", value=1.0, unit="1")
    finally:
        reg.close()


def test_rows_the_new_schema_refuses_stop_the_upgrade_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "bad.db"
    _database_at(_url(db), "0003")
    with sqlite3.connect(db) as con:
        con.execute(
            "INSERT INTO runs (id, kind, status, config, config_hash, version, host, started) "
            "VALUES ('abcd1234', 'train', 'completed', '{}', 'h', '0.0', 'x', '2025-01-01 00:00:00')"
        )
    with pytest.raises(CrmseError, match="refuses .*CHECK constraint failed.*nothing was changed") as info:
        Registry(_url(db))
    assert "\n" not in str(info.value)
    with sqlite3.connect(db) as con:  # still 0003, row intact
        assert con.execute("SELECT version_num FROM alembic_version").fetchone() == ("0003",)
        assert con.execute("SELECT kind FROM runs").fetchall() == [("train",)]
