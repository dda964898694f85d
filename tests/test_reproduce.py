"""The README's main job, `crmse reproduce ethanol --preset ... --from <archive>`, end to end.

Runs the console script as a user does, on a temporary workspace and the synthetic rMD17 archive
(conftest), with the hidden ``tiny`` preset: the quick pipeline (fetch -> pretrain -> sample ->
regularize -> MSE polish -> sample -> evaluate -> compare) at sizes of seconds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_cli import crmse

from crmse_cli.cli.common import fmt_value
from crmse_cli.registry.store import Registry
from crmse_cli.stages.reproduce import QUICK_CAVEAT, verdict
from crmse_cli.workspace import Workspace

pytestmark = pytest.mark.slow

STEPS = {
    "pretrain",
    "regularize-CRMSE",
    "polish-CRMSE",
    "sample-MSE",
    "sample-CRMSE",
    "evaluate-MSE",
    "evaluate-CRMSE",
    "diagnose-CRMSE",
    "compare",
}


def test_reproduce_end_to_end_through_the_cli(tmp_path: Path, synthetic_archive: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "out" / "report.html"
    args = ["reproduce", "ethanol", "--preset", "tiny", "--from", str(synthetic_archive), "--out", str(out)]
    proc = crmse(home, *args, timeout=600, columns=160)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr

    # The table: one column per model, the headline rows, the registry's numbers.
    text = proc.stdout
    assert "ethanol: MSE vs CRMSE (tiny, seed 0)" in text
    runs = dict(kv.split("=") for kv in re.search(r"runs: (.*)", text).group(1).split(", "))  # type: ignore[union-attr]
    assert set(runs) == STEPS
    reg = Registry.open(Workspace.resolve(home))
    assert {reg.get_run(r).status for r in runs.values()} == {"completed"}
    for label in ("MSE", "CRMSE"):
        finals = reg.final_metrics(runs[f"evaluate-{label}"])
        assert reg.get_run(runs[f"evaluate-{label}"]).parent == runs[f"sample-{label}"]
        for key, title in (("energy_ks", "energy KS"), ("hr_mae", "h(r) MAE"),
                           ("test_force_mae", "force MAE (kcal/mol/Å)")):  # fmt: skip
            row = next(line for line in text.splitlines() if title in line)
            assert fmt_value(finals[key].value) in row, (label, key, row)
    # Every torsion's profile error is a row, and its noise floor (reference halves) is printed.
    assert any("hydroxyl profile error" in line for line in text.splitlines())
    assert "profile noise floors (reference half vs half): hydroxyl " in text

    # The last lines: the verdict block, the verdict_lines of the runs, then what the numbers are worth.
    lines = text.rstrip().splitlines()
    start = lines.index("verdict (CRMSE against MSE):")
    block = [line.strip() for line in lines[start + 1 :]]
    assert all(line.startswith("  ") for line in lines[start + 1 :]), lines[start:]
    assert block == [*verdict(reg, runs), QUICK_CAVEAT + "; tiny test sizes, the numbers mean nothing"]
    assert "left the basin" in block[0] and any(line.startswith("test force MAE") for line in block)
    # The CRMSE arm is the recipe: CRMSE, then the polish the force budget cut; the polish is sampled.
    polish = reg.get_run(runs["polish-CRMSE"])
    assert polish.parent == runs["regularize-CRMSE"] and polish.config["budget"]["budget_frames"] == "held"
    assert reg.get_run(runs["sample-CRMSE"]).parent == polish.id
    assert reg.get_run(runs["diagnose-CRMSE"]).parent == polish.id
    assert block[1].startswith("MSE polish: ") and "+10% force budget" in block[1]

    # The report: the file named by --out, registered on the compare run, self-contained; its
    # title (the first thing on the page) says what the numbers are worth.
    assert f"report: {out}" in text.replace("\n", "")
    html = out.read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "CRMSE reproduction: ethanol" in html
    assert f"<h1>CRMSE reproduction: ethanol ({QUICK_CAVEAT}" in html
    [artifact] = reg.artifacts(runs["compare"], kind="report")
    assert Path(artifact.path) == out

    # Rerunning reuses every finished step (a new compare writes the report again).
    again = crmse(home, "--json", *args, timeout=600)
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert {k: v for k, v in result["runs"].items() if k != "compare"} == {
        k: v for k, v in runs.items() if k != "compare"
    }
    assert result["report"] == str(out) and set(result["metrics"]) == {"MSE", "CRMSE"}
    assert result["verdict"] == block[:-1] and result["caveat"] == block[-1]


def test_hidden_preset_stays_out_of_the_error_message(tmp_path: Path) -> None:
    proc = crmse(tmp_path / "home", "reproduce", "ethanol", "--preset", "nope")
    assert proc.returncode == 2  # a usage error, as click's
    assert "quick, paper" in proc.stderr and "tiny" not in proc.stderr
