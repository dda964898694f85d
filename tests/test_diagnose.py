"""`crmse diagnose`: the stage on tiny ethanol models (synthetic rMD17 archive), and the collapse filter."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from crmse_cli.errors import CrmseError
from crmse_cli.workspace import Workspace

# -n 2 --dist loadgroup: the module's tests share one worker, so its runs are built once.
pytestmark = pytest.mark.xdist_group("diagnose")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, synthetic_archive: Path) -> dict[str, Any]:
    """Two briefly trained models (seeds 0 and 1) with one short sample run each."""
    os.environ["CRMSE_NO_PROGRESS"] = "1"
    from crmse_cli.registry.store import Registry
    from crmse_cli.stages.fetch import fetch_rmd17
    from crmse_cli.stages.pretrain import preset_config, pretrain
    from crmse_cli.stages.sample import SampleConfig, sample

    ws = Workspace.resolve(tmp_path_factory.mktemp("ws"))
    fetch_rmd17(ws, "ethanol", from_path=synthetic_archive)
    for name, seed in (("mse", 0), ("other", 1)):
        cfg = preset_config("quick", {"n_train": 60, "n_val": 20, "max_epochs": 3, "seed": seed})
        pretrain(ws, dataset="ethanol", split="01", config=cfg, name=name, progress=False)
        sample(ws, name, SampleConfig(replicas=4, steps=100, record_every=10, seed=1), name=f"s-{name}")
    return {"ws": ws, "reg": Registry.open(ws)}


@pytest.mark.slow
def test_a_model_against_itself_reads_no_change(setup: dict[str, Any]) -> None:
    from crmse_cli.stages.diagnose import DiagnoseConfig, diagnose

    ws, reg = setup["ws"], setup["reg"]
    res = diagnose(ws, "mse", against="mse", config=DiagnoseConfig(max_test_frames=50), name="d-self")
    m = res.metrics
    assert m["hessian_ratio_soft"][0] == pytest.approx(1.0, rel=1e-8)
    assert m["hessian_ratio_stiff"][0] == pytest.approx(1.0, rel=1e-8)
    assert m["minimum_rmsd_A"] == (pytest.approx(0.0, abs=1e-10), "A")
    assert m["soft_force_slope"][0] == pytest.approx(m["soft_force_slope_mse"][0])
    assert m["energy_ks_run_vs_mse"] == (0.0, "1")
    assert m["fisher_p_vs_mse"][0] == pytest.approx(1.0)
    if m["n_collapsed_frames"][0] > 0:
        assert m["collapse_lift_kT"] == (pytest.approx(0.0, abs=1e-9), "kT")
    run = reg.get_run("d-self")
    assert run.kind == "diagnose" and run.status == "completed" and run.parent == reg.get_run("mse").id
    rows = reg.metrics(run.id, name="mode_eigenvalue_mse")
    assert [r.step for r in rows] == list(range(21)) and rows[0].unit == "kcal/mol/A^2"
    assert [r.value for r in rows] == sorted(r.value for r in rows)
    with np.load(res.diagnosis_path) as z:
        np.testing.assert_allclose(z["ratios"], 1.0, rtol=1e-8)
        assert z["mse_vectors"].shape == (27, 21)


@pytest.mark.slow
def test_another_model_with_a_control_stores_every_instrument(setup: dict[str, Any]) -> None:
    from crmse_cli.stages.diagnose import DiagnoseConfig, diagnose

    ws, reg = setup["ws"], setup["reg"]
    cfg = DiagnoseConfig(max_test_frames=50, mass_weighted=True, temperature_K=300.0)
    res = diagnose(ws, "other", against="mse", control="mse", config=cfg)
    finals = reg.final_metrics(res.run_id)
    expected_units = {
        "hessian_ratio_soft": "1",
        "hessian_ratio_soft_control": "1",
        "softest_eigenvalue_mse": "kcal/mol/A^2/amu",
        "soft_force_slope": "1",
        "soft_force_slope_mse": "1",
        "replicas_run": "1",
        "left_control": "1",
        "fisher_p_vs_control": "1",
        "energy_ks_run_vs_mse": "1",
        "energy_ks_run_vs_dft": "1",
        "energy_ks_mse_vs_dft": "1",
        "n_collapsed_frames": "1",
        "diagnose_wall_s": "s",
    }
    for key, unit in expected_units.items():
        assert finals[key].unit == unit, key
    assert finals["hessian_ratio_soft_control"].value == pytest.approx(1.0, rel=1e-8)
    assert finals["hessian_ratio_soft"].value != pytest.approx(1.0, rel=1e-3)  # another model
    assert finals["energy_ks_run_vs_mse"].value > 0.0
    if finals["n_collapsed_frames"].value > 0:
        assert finals["collapse_temperature_K"].value == 300.0


@pytest.mark.slow
def test_the_command_prints_json_and_refuses_bad_runs(setup: dict[str, Any]) -> None:
    from test_cli import crmse

    ws = setup["ws"]
    proc = crmse(ws.home, "diagnose", "other", "--against", "mse", "--max-test-frames", "20", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["metrics"]["hessian_ratio_soft"]["unit"] == "1"
    assert len(out["modes"]["ratios"]) == 21
    table = crmse(ws.home, "diagnose", "other", "--against", "s-mse", "--max-test-frames", "20")
    assert table.returncode == 0 and "hessian_ratio_soft" in table.stdout and "modes" not in table.stdout
    listed = crmse(ws.home, "runs", "--kind", "diagnose", columns=200)
    assert "H soft/MSE" in listed.stdout and out["run_id"] in listed.stdout
    bad = crmse(ws.home, "diagnose", "other", "--against", "no-such-run")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    with pytest.raises(CrmseError, match="not a sample run"):
        from crmse_cli.stages.diagnose import diagnose

        diagnose(ws, "other", against="mse", samples=["mse"])


def test_collapsed_frames_are_the_pair_collapse_failures(tmp_path: Path) -> None:
    from crmse_cli.analysis.diagnosis import collapsed_frames
    from crmse_cli.sampling.monitor import StabilityMonitor
    from crmse_cli.sampling.trajectory import TrajectoryRecorder

    species = np.array([6, 1, 1, 1, 1])
    base = np.array([[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63],
                     [0.63, -0.63, -0.63]], dtype=float)  # fmt: skip
    rng = np.random.default_rng(0)
    monitor = StabilityMonitor.from_reference(species, base + 0.02 * rng.normal(size=(50, 5, 3)))
    collapsed = base.copy()
    collapsed[2] = collapsed[1] + np.array([0.5, 0.0, 0.0])  # H-H at 0.5 Å, C-H bonds still near 1.1 Å
    collapsed[2] = collapsed[2] / np.linalg.norm(collapsed[2]) * 1.09
    broken = base.copy()
    broken[1] *= 3.0  # a broken bond, not a collapse

    class State:
        def __init__(self, x: np.ndarray, step: int) -> None:
            self.positions = torch.as_tensor(x)
            self.energy = torch.zeros(len(x))
            self.step, self.time_fs = step, float(step)

    rec = TrajectoryRecorder(species)
    rec(State(np.stack([base, base]), 0))
    rec(State(np.stack([collapsed, broken]), 1))
    rec(State(np.stack([collapsed, base]), 2))
    path = rec.save(tmp_path / "s.npz", meta={"temperature_K": 450.0})
    frames, temperature = collapsed_frames([path], monitor, limit=10, seed=0)
    assert frames.shape == (2, 5, 3) and temperature == 450.0
    np.testing.assert_allclose(frames[0], collapsed, atol=1e-6)
    assert collapsed_frames([path], monitor, limit=1, seed=0)[0].shape == (1, 5, 3)


@pytest.mark.slow
def test_compare_report_shows_the_instruments_of_diagnosed_runs(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    from crmse_cli.report.instruments import instruments_section
    from crmse_cli.stages.compare import compare
    from crmse_cli.stages.diagnose import DiagnoseConfig, diagnose

    ws, reg = setup["ws"], setup["reg"]
    d = diagnose(ws, "other", against="mse", config=DiagnoseConfig(max_test_frames=20), name="d-report")
    res = compare(ws, ["other", "s-mse"], out=tmp_path / "r.html", progress=False)
    page = res.path.read_text()
    assert 'id="instruments-table"' in page and d.run_id in page
    stored = reg.final_metrics(d.run_id)["hessian_ratio_soft"].value
    cell = page.split('data-key="hessian_ratio_soft">', 1)[1].split("<", 1)[0]
    assert float(cell) == pytest.approx(stored, rel=1e-2)
    machine = json.loads(
        page.split('<script type="application/json" id="report-data">', 1)[1].split("</script>")[0]
    )
    assert "hessian" in machine["figures"]
    assert "virial_temperature_ref_K" in [m["key"] for m in machine["metrics"]]
    assert instruments_section([]) == ""
