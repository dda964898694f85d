"""`crmse compare`: resolving runs, the report's data against the registry, the offline page, errors.

One module-scoped workspace holds ethanol frames from the synthetic rMD17 archive (conftest), a
briefly trained MSE model, a tiny CRMSE run from it, and a few short Langevin samples of each
(tiny sizes, one torch thread). The browser test loads the page in headless Chromium when it is
installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crmse_cli.errors import CrmseError, NotFoundError
from crmse_cli.workspace import Workspace

# -n 2 --dist loadgroup: the module's tests share one worker, so its runs are built once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("report")]

REPO = Path(__file__).resolve().parents[1]
LEAD_ORDER = ("verdict", "plot-survival", "plot-tradeoff", "failures", "plot-energy", "metrics-table",
              "tconf-ref", "header-table")  # fmt: skip
"""Page elements in the order the report shows them: the answer first, reference material last."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, synthetic_archive: Path) -> dict[str, Any]:
    """A workspace with runs: mse (pretrain), crmse (regularize), s-mse (evaluated), s-crmse (not)."""
    os.environ["CRMSE_NO_PROGRESS"] = "1"
    from crmse_cli.registry.store import Registry
    from crmse_cli.stages.evaluate import evaluate
    from crmse_cli.stages.fetch import fetch_rmd17
    from crmse_cli.stages.pretrain import preset_config, pretrain
    from crmse_cli.stages.regularize import RegularizeConfig, regularize
    from crmse_cli.stages.sample import SampleConfig, sample
    from crmse_cli.train.contrastive import ContrastiveConfig

    ws = Workspace.resolve(tmp_path_factory.mktemp("ws"))
    fetch_rmd17(ws, "ethanol", from_path=synthetic_archive)
    cfg = preset_config("quick", {"n_train": 60, "n_val": 20, "max_epochs": 3})
    mse = pretrain(ws, dataset="ethanol", split="01", config=cfg, name="mse", progress=False).run_id
    c = ContrastiveConfig(n_chains=4, steps_per_update=5, n_updates=3, batch_size=8, warmup_updates=1, seed=7)
    rcfg = RegularizeConfig(contrastive=c, val_every=3, chains_every=3)
    crmse = regularize(ws, mse, rcfg, name="crmse").run_id
    scfg = SampleConfig(replicas=4, steps=100, record_every=10, seed=1)
    s_mse = sample(ws, mse, scfg, name="s-mse").run_id
    s_crmse = sample(ws, crmse, scfg, name="s-crmse").run_id
    ev_mse = evaluate(ws, s_mse, name="ev-mse").run_id
    return {"ws": ws, "reg": Registry.open(ws), "mse": mse, "crmse": crmse, "s_mse": s_mse,
            "s_crmse": s_crmse, "ev_mse": ev_mse}  # fmt: skip


@pytest.fixture(scope="module")
def compared(setup: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Compare the MSE model (via its sample) with the CRMSE samples, which get evaluated here."""
    from crmse_cli.stages.compare import compare

    out = tmp_path_factory.mktemp("report") / "sub" / "report.html"
    return compare(setup["ws"], ["mse", "s-crmse"], out=out, title="MSE vs CRMSE", progress=False)


def test_compare_resolves_evaluates_and_registers_the_report(setup: dict[str, Any], compared: Any) -> None:
    reg = setup["reg"]
    run = reg.get_run(compared.run_id)
    assert run.kind == "compare" and run.status == "completed" and run.dataset == "ethanol"
    assert compared.sample_runs == {"mse": setup["s_mse"], "s-crmse": setup["s_crmse"]}
    # s-mse already had an evaluation (reused); s-crmse had none (evaluated now, a child of it).
    assert len(compared.evaluated) == 1
    assert [r.id for r in reg.children(setup["s_crmse"], kind="evaluate")] == compared.evaluated
    assert [r.id for r in reg.children(setup["s_mse"], kind="evaluate")] == [setup["ev_mse"]]
    (art,) = reg.artifacts(compared.run_id, kind="report")
    assert Path(art.path) == compared.path and compared.path.is_file()
    from crmse_cli.fileio import sha256_file

    assert art.sha256 == sha256_file(compared.path)
    assert not list(compared.path.parent.glob(".report.html.*"))  # the temp file was renamed


def _report(setup: dict[str, Any], refs: list[str]) -> Any:
    from crmse_cli.report.collect import collect, resolve_target

    return collect(setup["reg"], [resolve_target(setup["reg"], r) for r in refs], title="t")


def test_report_numbers_are_the_registry_and_artifact_numbers(setup: dict[str, Any], compared: Any) -> None:
    from crmse_cli.report.figures import _element_pair, build_figures, energy_histograms, selected_pairs
    from crmse_cli.report.rows import metric_table
    from crmse_cli.units import kT

    reg = setup["reg"]
    report = _report(setup, ["mse", "s-crmse"])
    ev = {r.label: r.evaluate.id for r in report.runs}
    assert ev["mse"] == setup["ev_mse"]
    rows = {row.key: row for row in metric_table(report)}
    for i, label in enumerate(("mse", "s-crmse")):
        finals = reg.final_metrics(ev[label])
        keys = ("energy_ks", "hr_mae", "dihedral_profile_error.hydroxyl", "dihedral_profile_error.methyl",
                "stable_fraction", "config_temperature_sample_K", "config_temperature_ref_K")  # fmt: skip
        for key in keys:
            assert rows[key].values[i] == finals[key].value, key
    assert rows["test_force_mae"].values[0] == reg.final_metrics(setup["mse"])["test_force_mae"].value
    assert rows["test_energy_mae"].values[1] == reg.final_metrics(setup["crmse"])["test_energy_mae"].value
    t_ref = [reg.final_metrics(e)["config_temperature_ref_K"].value for e in ev.values()]
    assert rows["config_temperature_sample_K"].reference == pytest.approx(np.mean(t_ref))

    # The page's machine-readable copy holds the same table, and the KS cell shows the same number.
    html = compared.path.read_text()
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1))
    ks = next(m for m in data["metrics"] if m["key"] == "energy_ks")
    assert ks["values"] == rows["energy_ks"].values
    assert f'data-key="energy_ks">{rows["energy_ks"].values[0]:.4g}<' in html
    assert 'id="tconf-ref"' in html and f"{np.mean(t_ref):.0f} K" in html

    # Energy histograms: the artifact's energies on the shared edges.
    edges, ref, dens = energy_histograms(report)
    for r in report.runs:
        with np.load(reg.artifacts(r.evaluate.id, kind="evaluation")[0].path) as z:
            e, e_ref = z["sample_energies"], z["ref_energies"]
        counts = np.histogram(e, bins=edges)[0]
        np.testing.assert_allclose(dens[r.label], counts / (len(e) * np.diff(edges)))
        np.testing.assert_allclose(ref, np.histogram(e_ref, bins=edges)[0] / (len(e_ref) * np.diff(edges)))
    figs = {f.id: f.figure for f in build_figures(report)}
    assert list(figs) == [
        "survival",
        "tradeoff",
        "energy",
        "hr",
        "pairs",
        "dihedrals",
        "dihedral2d",
        "learning",
    ]
    assert [t.name for t in figs["energy"].data] == ["DFT reference", "mse", "s-crmse"]
    np.testing.assert_allclose(figs["energy"].data[1].y[:-1], dens["mse"])
    arrays = report.runs[1].arrays
    np.testing.assert_array_equal(figs["hr"].data[2].y, arrays["hr_sample"])
    np.testing.assert_array_equal(figs["hr"].data[0].y, report.reference["hr_ref"])
    np.testing.assert_array_equal(figs["survival"].data[1].y, arrays["survival_fraction"])
    # Accuracy against stability: each run's force MAE relative to the first run's, replicas out.
    base = reg.final_metrics(setup["mse"])["test_force_mae"].value
    for trace, r, model in zip(figs["tradeoff"].data, report.runs, ("mse", "crmse"), strict=True):
        final = reg.final_metrics(r.evaluate.id)
        assert trace.name == r.label
        assert trace.y[0] == final["n_left"].value / final["n_replicas"].value
        assert trace.x[0] == pytest.approx(reg.final_metrics(setup[model])["test_force_mae"].value / base)
    hydroxyl = [t for t in figs["dihedrals"].data if t.xaxis == "x"]
    f_ref = report.reference["dihedral_F_ref.hydroxyl"]
    assert [v if v is not None else np.inf for v in hydroxyl[0].y] == pytest.approx(list(f_ref))
    assert len(figs["dihedral2d"].data) == 3  # reference + two runs
    with np.errstate(divide="ignore"):
        f2d = -kT(500.0) * np.log(arrays["dihedral2d_sample"].T)
    f2d[~np.isfinite(f2d)] = np.nan
    np.testing.assert_allclose(figs["dihedral2d"].data[2].z, f2d - np.nanmin(f2d))
    # Learning curves: only the regularize model has them, straight from the registry rows.
    (curve,) = [t for t in figs["learning"].data if t.xaxis == "x2"]  # L_C panel
    rows_c = reg.metrics(setup["crmse"], name="loss_c")
    assert list(curve.x) == [m.step for m in rows_c] and list(curve.y) == [m.value for m in rows_c]
    labels = [str(x) for x in report.reference["pair_labels"]]
    assert [_element_pair(p) for p in selected_pairs(labels)] == ["H-O", "C-O", "C-C", "C-H", "H-H"]
    pair_titles = [a.text for a in figs["pairs"].layout.annotations]
    for want in ("geminal H-H pair", "closest H-H distance per frame", "closest pair distance per frame"):
        assert any(want in t for t in pair_titles), want


def test_report_leads_with_the_answer(setup: dict[str, Any], compared: Any) -> None:
    import html as html_lib

    from crmse_cli.report.verdict import Evidence, verdict_lines

    reg = setup["reg"]
    page = compared.path.read_text()
    order = [page.index(f'id="{m}"') for m in LEAD_ORDER]
    assert order == sorted(order), order
    # The verdict: s-crmse against the baseline mse, the pure function of the stored metrics.
    ev = {r: reg.get_run(compared.sample_runs[r]) for r in ("mse", "s-crmse")}
    stab = {r: {k: m.value for k, m in reg.final_metrics(s.id).items()} for r, s in ev.items()}
    errors = {r: {k: m.value for k, m in reg.final_metrics(setup[m]).items()} for r, m in
              (("mse", "mse"), ("s-crmse", "crmse"))}  # fmt: skip
    lines = verdict_lines(
        Evidence(int(stab["mse"]["n_left"]), 4, errors["mse"]),
        Evidence(int(stab["s-crmse"]["n_left"]), 4, errors["s-crmse"]),
        budget=errors["s-crmse"],
    )
    verdict = page[page.index('id="verdict"') : page.index('id="plot-survival"')]
    for line in lines:
        assert f"<li>{html_lib.escape(line)}</li>" in verdict, line
    counts = f"{int(stab['mse']['n_left'])}/4 -> {int(stab['s-crmse']['n_left'])}/4"
    assert html_lib.escape(counts) in verdict
    # Failures: one row per replica that left, from the samples files' stability records.
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1))
    for label, sample in ev.items():
        with np.load(reg.artifacts(sample.id, kind="samples")[0].path) as z:
            left = sorted(np.flatnonzero(z["stability_left"]).tolist())
            reasons = z["stability_reason"]
        rows = [f for f in data["failures"] if f["run"] == label]
        assert sorted(f["replica"] for f in rows) == left
        assert all(f["reason"] == reasons[f["replica"]] for f in rows)
    assert page.count("<tr><td>") >= min(len(data["failures"]), 60)


def test_page_is_self_contained(compared: Any) -> None:
    html = compared.path.read_text()
    assert not re.search(r"<script[^>]*\ssrc\s*=", html, re.I)
    assert not re.search(r"<link[^>]*href\s*=\s*[\"']?(https?:)?//", html, re.I)
    assert not re.search(r"@import|url\(\s*[\"']?https?:", html.split("<script", 1)[0], re.I)  # CSS part
    assert html.count("plotly.js v") == 1 and html.count("Plotly, Inc.") == 1
    assert "mathjax" not in html.split('<script type="text/javascript">', 1)[0].lower()
    assert html.count('class="crmse-plot"') == 8
    assert 'id="js-errors"' in html and 'id="plots-done"' in html


def test_any_run_kind_and_the_default_output(setup: dict[str, Any]) -> None:
    from crmse_cli.stages.compare import compare

    reg = setup["reg"]
    res = compare(setup["ws"], ["ev-mse", setup["crmse"], "s-mse"], progress=False)
    assert res.path == setup["ws"].run_dir(res.run_id) / "report.html" and res.path.is_file()
    # ev-mse and s-mse stand for the same samples: drawn once; crmse -> its latest sample run.
    assert list(res.sample_runs.values()) == [setup["s_mse"], setup["s_crmse"]]
    assert res.evaluated == []  # both were evaluated already
    assert reg.get_run(res.run_id).config["sample_runs"] == [setup["s_mse"], setup["s_crmse"]]


def _fake_sample(reg: Any, tmp_path: Path, dataset: str) -> str:
    run = reg.create_run(kind="sample", dataset=dataset, config={"dataset": dataset}, seed=0)
    path = tmp_path / f"{run.id}.npz"
    path.write_bytes(b"")
    reg.add_artifact(run.id, kind="samples", path=str(path), sha256="0" * 64)
    reg.set_status(run.id, "completed")
    return run.id


def test_bad_inputs_fail_early_with_one_line(setup: dict[str, Any], tmp_path: Path) -> None:
    from crmse_cli.stages.compare import compare

    ws, reg = setup["ws"], setup["reg"]
    before = len(reg.list_runs(kind="compare"))
    with pytest.raises(NotFoundError, match="no run 'nosuch'"):
        compare(ws, ["s-mse", "nosuch"], progress=False)
    lonely = reg.create_run(kind="pretrain", dataset="ethanol", config={"dataset": "ethanol"}, seed=0)
    with pytest.raises(CrmseError, match=f"crmse sample {lonely.id}"):
        compare(ws, [lonely.id], progress=False)
    other = _fake_sample(reg, tmp_path, "aspirin")
    with pytest.raises(CrmseError, match="different datasets"):
        compare(ws, ["s-mse", other], progress=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(CrmseError, match="not a folder"):
        compare(ws, ["s-mse"], out=blocker / "report.html", progress=False)
    with pytest.raises(CrmseError, match="is a folder"):
        compare(ws, ["s-mse"], out=tmp_path, progress=False)
    with pytest.raises(CrmseError, match="at least one"):
        compare(ws, [], progress=False)
    assert len(reg.list_runs(kind="compare")) == before  # refused before any run was created


def _crmse(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("crmse")
    env = {**os.environ, "CRMSE_NO_PROGRESS": "1", "COLUMNS": "200"}
    cmd = [str(exe), "--home", str(ws.home), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)


def test_the_command(setup: dict[str, Any], tmp_path: Path) -> None:
    ws = setup["ws"]
    out = tmp_path / "cli.html"
    res = _crmse(ws, "--json", "compare", "s-mse", "s-crmse", "--out", str(out), "--title", "cli")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["report"] == str(out) and out.is_file()
    assert (
        data["metrics"]["s-mse"]["energy_ks"]["value"]
        == setup["reg"].final_metrics(setup["ev_mse"])["energy_ks"].value
    )
    for args, want in (
        (["compare", "nosuch"], "no run 'nosuch'"),
        (["compare", "s-mse", "--out", str(tmp_path / "cli.html" / "x.html")], "not a folder"),
    ):
        bad = _crmse(ws, *args)
        assert bad.returncode == 1
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and want in lines[0], bad.stderr


@pytest.mark.browser
def test_report_renders_in_headless_chromium(compared: Any, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not on PATH; install it to run the browser check")
    page = tmp_path / "report.html"
    shutil.copy(compared.path, page)
    flags = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
             f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=600)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    errors = re.search(r'<pre id="js-errors">(.*?)</pre>', html, re.S)
    assert errors is not None and errors.group(1).strip() == "", errors.group(1) if errors else html[:500]
    ids = re.findall(r'<div class="crmse-plot[^"]*" id="(plot-[a-z0-9]+)"', html)
    assert len(ids) == 8
    starts = [html.index(f'id="{i}"') for i in ids] + [html.index('id="plots-done"')]
    for name, a, b in zip(ids, starts, starts[1:], strict=False):
        assert 'class="main-svg"' in html[a:b], f"{name} was not drawn"
    assert re.search(r'id="plots-done" data-rendered="8"', html), "render marker missing"
    # The answer leads: the verdict, then the survival curves and the trade-off plot, before the
    # distributions; the temperature callout and the run metadata come last.
    order = [html.index(f'id="{m}"') for m in LEAD_ORDER]
    assert order == sorted(order), order
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1400,4000", page.as_uri()],
                   capture_output=True, timeout=600, check=False)  # fmt: skip
    assert shot.is_file() and shot.stat().st_size > 10_000
    if os.environ.get("CRMSE_TEST_ARTIFACTS"):
        dest = Path(os.environ["CRMSE_TEST_ARTIFACTS"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, dest / "compare-report.png")
        shutil.copy(page, dest / "compare-report.html")
