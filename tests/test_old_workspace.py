"""Runs written by older crmse still read: `runs`, `show`, `table`, the report and the checkpoints.

The fixture ``tests/fixtures/workspace-9a218bf`` is a workspace written by commit 9a218bf
(``make_old_workspace.py`` regenerates it; its README says how): one run of every kind the
``reproduce`` pipeline makes, and a queued sweep. Each test works on a copy, relocated to the
test's folder (the registry records absolute paths). What the old code wrote is read back here
with plain SQL, not through the registry under test, so the comparisons are independent of it.
"""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from synthetic import cli_main, one_line_error

from crmse_cli.analysis.study import fmt as study_fmt
from crmse_cli.cli.common import fmt_value

FIXTURE = Path(__file__).parent / "fixtures" / "workspace-9a218bf"
MANIFEST: dict[str, Any] = json.loads((FIXTURE / "manifest.json").read_text())
RUNS: dict[str, str] = MANIFEST["runs"]


def relocate(db: Path, old: str, new: str) -> None:
    """Rewrite the home ``old`` to ``new`` in every text cell of the registry ``db``."""
    with sqlite3.connect(db) as con:
        tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in [row[1] for row in con.execute(f"PRAGMA table_info({table})")]:
                con.execute(
                    f"UPDATE {table} SET {column} = replace({column}, ?, ?) WHERE typeof({column}) = 'text'",
                    (old, new),
                )
    con.close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the old workspace in the test's folder, set as CRMSE_HOME."""
    home = tmp_path / "home"
    shutil.copytree(FIXTURE / "home", home)
    relocate(home / "crmse.db", MANIFEST["home"], str(home))
    monkeypatch.setenv("CRMSE_HOME", str(home))
    monkeypatch.delenv("CRMSE_DB_URL", raising=False)
    return home


def old_rows(home: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on the old registry, read with sqlite3 (not through the registry under test)."""
    con = sqlite3.connect(home / "crmse.db")
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def final_values(home: Path, run_id: str) -> dict[str, float]:
    """The run's final metrics (step NULL) as the old code stored them."""
    rows = old_rows(home, "SELECT name, value FROM metrics WHERE run_id = ? AND step IS NULL", run_id)
    return dict(rows)


def test_the_fixture_holds_every_kind_the_pipeline_writes(home: Path) -> None:
    kinds = dict(old_rows(home, "SELECT id, kind FROM runs"))
    assert set(kinds) == set(RUNS.values())
    assert set(kinds.values()) == {"pretrain", "regularize", "sample", "evaluate", "diagnose", "compare"}
    size = sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file())
    assert size < 2_000_000, size


def test_runs_lists_every_old_run(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli_main(monkeypatch, capsys, "--json", "runs")
    assert code == 0, err
    listed = {r["id"]: r for r in json.loads(out)}
    assert set(listed) == set(RUNS.values())
    statuses = dict(old_rows(home, "SELECT id, status FROM runs"))
    for run_id, row in listed.items():
        assert row["status"] == statuses[run_id]
        for name, value in final_values(home, run_id).items():
            assert row["metrics"][name] == pytest.approx(value, nan_ok=True), (run_id, name)
    code, out, err = cli_main(monkeypatch, capsys, "runs")
    assert code == 0 and "Traceback" not in err, err
    assert all(run_id in out for run_id in RUNS.values())


@pytest.mark.parametrize("step", sorted(RUNS))
def test_show_reads_every_old_run(
    step: str, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = RUNS[step]
    code, out, err = cli_main(monkeypatch, capsys, "--json", "show", run_id)
    assert code == 0, err
    shown = json.loads(out)
    [(kind, config)] = old_rows(home, "SELECT kind, config FROM runs WHERE id = ?", run_id)
    assert shown["run"]["kind"] == kind and shown["run"]["config"] == json.loads(config)
    finals = final_values(home, run_id)
    for name, value in finals.items():
        got = shown["metrics"][name]["value"]
        assert (math.isnan(value) and math.isnan(got)) or got == pytest.approx(value), (name, got, value)
    checkpoints = {tag for (tag,) in old_rows(home, "SELECT tag FROM checkpoints WHERE run_id = ?", run_id)}
    assert {c["tag"] for c in shown["checkpoints"]} == checkpoints
    code, out, err = cli_main(monkeypatch, capsys, "show", run_id)
    assert code == 0 and "Traceback" not in err, err
    assert run_id in out and kind in out


def test_table_reads_the_old_evaluate_runs(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluates = [RUNS["evaluate-MSE"], RUNS["evaluate-CRMSE"]]
    export = tmp_path / "export.json"
    code, out, err = cli_main(monkeypatch, capsys, "table", *evaluates, "--export", str(export))
    assert code == 0, err
    exported = {r["id"]: r for r in json.loads(export.read_text())["runs"]}
    for run_id in evaluates:
        finals = final_values(home, run_id)
        for name in ("energy_ks", "hr_mae", "test_force_mae"):
            assert study_fmt(finals[name]) in out, (run_id, name, out)
        for name, value in finals.items():
            assert exported[run_id]["metrics"][name][0] == pytest.approx(value, nan_ok=True), name
    code, out, err = cli_main(monkeypatch, capsys, "table", "--group", f"old={','.join(evaluates)}")
    assert code == 0, err


def test_report_of_old_runs(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out_html = tmp_path / "report.html"
    runs = [RUNS["evaluate-MSE"], RUNS["evaluate-CRMSE"]]
    code, out, err = cli_main(monkeypatch, capsys, "--json", "compare", *runs, "--out", str(out_html))
    assert code == 0, err
    result = json.loads(out)
    assert result["evaluated"] == []  # the old evaluations were read, not redone
    html = out_html.read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    ks = fmt_value(final_values(home, RUNS["evaluate-CRMSE"])["energy_ks"])
    assert ks in html


def test_old_sweep_reads(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli_main(monkeypatch, capsys, "--json", "sweep", "status", MANIFEST["sweep"])
    assert code == 0, err
    assert "queued" in out


@pytest.mark.parametrize("step", ["pretrain", "regularize-CRMSE"])
def test_old_checkpoints_load(step: str, home: Path) -> None:
    from crmse_cli.model.checkpoint import load_checkpoint

    [(path,)] = old_rows(
        home, "SELECT path FROM checkpoints WHERE run_id = ? AND tag IN ('best', 'final')", RUNS[step]
    )
    from crmse_cli.model.checkpoint_extra import CheckpointExtra

    potential, payload = load_checkpoint(Path(path), device="cpu")
    assert sum(p.numel() for p in potential.parameters()) > 0
    extra = CheckpointExtra.of(payload, where=path)  # written before the record had a version
    assert extra.version == 0 and extra.dataset and extra.split == "01"
    assert extra.species is not None and len(extra.species) == 9  # ethanol
    assert extra.train_indices is not None and len(extra.train_indices) > 0


def test_a_report_without_the_sampling_temperature_names_the_run(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Profiled at 500 K without a word before: now one line naming the evaluate run and the metric."""
    run_id = RUNS["evaluate-CRMSE"]
    with sqlite3.connect(home / "crmse.db") as con:
        con.execute("DELETE FROM metrics WHERE run_id = ? AND name = 'sampling_temperature_K'", (run_id,))
    con.close()
    result = cli_main(monkeypatch, capsys, "compare", run_id, "--out", str(tmp_path / "report.html"))
    one_line_error(result, f"evaluate run {run_id}", "'sampling_temperature_K'")


def test_samples_without_their_temperature_name_the_run(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A samples file without ``temperature_K`` was evaluated at 500 K without a word."""
    import numpy as np

    from crmse_cli.fileio import sha256_file

    run_id = RUNS["sample-CRMSE"]
    [(path,)] = old_rows(home, "SELECT path FROM artifacts WHERE run_id = ? AND kind = 'samples'", run_id)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    del meta["temperature_K"]
    arrays["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with sqlite3.connect(home / "crmse.db") as con:
        con.execute("UPDATE artifacts SET sha256 = ? WHERE path = ?", (sha256_file(Path(path)), path))
    con.close()
    result = cli_main(monkeypatch, capsys, "evaluate", run_id)
    one_line_error(result, f"sample run {run_id}'s samples", "'temperature_K'")


def _drop_config_field(home: Path, run_id: str, field: str) -> None:
    """Remove ``field`` from a run's recorded config, as a run written before the field existed."""
    with sqlite3.connect(home / "crmse.db") as con:
        con.execute("UPDATE runs SET config = json_remove(config, ?) WHERE id = ?", (f"$.{field}", run_id))
    con.close()


def test_a_report_of_samples_without_their_sampler_names_the_run(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every sample run records its integrator; one without it was drawn as langevin without a word."""
    run_id = RUNS["sample-CRMSE"]
    _drop_config_field(home, run_id, "integrator")
    result = cli_main(
        monkeypatch, capsys, "compare", RUNS["evaluate-CRMSE"], "--out", str(tmp_path / "r.html")
    )
    one_line_error(result, f"sample run {run_id}", "'integrator'")


def test_a_report_of_a_diagnosis_without_its_model_names_the_run(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every diagnose run records the model it diagnosed against; one without it read 'None'."""
    run_id = RUNS["diagnose-CRMSE"]
    _drop_config_field(home, run_id, "against")
    runs = (RUNS["evaluate-MSE"], RUNS["evaluate-CRMSE"])
    result = cli_main(monkeypatch, capsys, "compare", *runs, "--out", str(tmp_path / "r.html"))
    one_line_error(result, f"diagnose run {run_id}", "'against'")
