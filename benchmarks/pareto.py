"""Issue 29's trade-off figure from metric exports: stability against force cost, per method and seed.

Usage:
    python benchmarks/pareto.py EXPORT.json [EXPORT.json ...] --out docs/study/pareto.html [--png docs/pareto.png]

A point is every evaluation run named ``TAG-eval-ARM-sS`` (``benchmarks/budget_study.sh``'s
names, and the 2026-12-06 grid's ``r200-eval-crmse-lL-sS``) whose parent ``TAG-mse-sS`` is in the
exports: its replicas out of the basin against its test force MAE relative to that parent. Runs are
grouped into methods by their arm name (``--label ARM=TEXT`` renames one). Only the exports are
read, so the figure regenerates from ``docs/study/`` with no registry. ``--png`` also writes a
screenshot through headless Chromium when one is installed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from arms_table import RERUN, _load  # the exports' reader: one place (run as a script from benchmarks/)
from study_arms import ALIASES, ARMS

from crmse_cli.report.figures import FigureSpec
from crmse_cli.report.html import page
from crmse_cli.report.pareto import TradeoffPoint, tradeoff_figure

EVAL = re.compile(r"^(?P<tag>[a-z0-9]+)-eval-(?P<arm>.+)-s(?P<seed>\d+)$")
LABELS = {name: arm.label for name, arm in ARMS.items()}
LABELS.update({old: LABELS[new] for old, new in ALIASES.items()})

PARENTS = {
    "r2": "rMD17, reproducible parents",
    "r200": "rMD17, 2026-12-06 parents",
    "x2": "exact xTB, reproducible parents",
}


def points(runs: dict[str, dict[str, float]], labels: dict[str, str]) -> list[TradeoffPoint]:
    """Every evaluation with a parent in ``runs``, as a trade-off point."""
    out = []
    for name, m in sorted(runs.items()):
        match = EVAL.match(name)
        parent = runs.get(f"{match['tag']}-mse-s{match['seed']}") if match else None
        if not match or parent is None or "n_left" not in m or "test_force_mae" not in m:
            continue
        arm = match["arm"]
        if arm not in labels and arm.endswith(RERUN) and arm[: -len(RERUN)] in labels:
            arm = arm[: -len(RERUN)]  # a sample run again under the arm's name + "r"
        grid = re.fullmatch(r"crmse-l(.+)", arm)
        label = labels.get(arm) or (f"CRMSE {grid[1]} eV" if grid else arm)
        out.append(
            TradeoffPoint(
                method=label,
                seed=int(match["seed"]),
                force_mae_change=m["test_force_mae"] / parent["test_force_mae"] - 1,
                n_left=int(m["n_left"]),
                n_replicas=int(m["n_replicas"]),
                parents=PARENTS.get(match["tag"], match["tag"]),
            )
        )
    return out


def main() -> None:
    """Write the figure's page (and a PNG), and print its points as a markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("exports", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="the HTML page to write")
    ap.add_argument("--png", type=Path, help="also a screenshot (headless Chromium)")
    ap.add_argument("--label", action="append", default=[], help="ARM=TEXT: a method's name")
    args = ap.parse_args()
    labels = dict(LABELS, **dict(item.split("=", 1) for item in args.label))
    pts = points(_load(args.exports), labels)
    print("| method | seed | Δ force MAE | left |")
    print("|---|---|---|---|")
    for p in sorted(pts, key=lambda p: (p.method, p.seed)):
        print(f"| {p.method} | {p.seed} | {100 * p.force_mae_change:+.1f}% | {p.n_left}/{p.n_replicas} |")
    spec = FigureSpec(
        "tradeoff",
        "Stability against force accuracy",
        "One point per model and seed: replicas out of the basin in 10 ps at 500 K against its test "
        "force MAE relative to its MSE parent. Shaded: the issue's target (at most 2 of 64 out, "
        "force within +10%).",
        tradeoff_figure(pts),
    )
    args.out.write_text(page("The trade-off", "", [spec], {"points": [p.__dict__ for p in pts]}))
    print(f"wrote {args.out}")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if args.png and chromium:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [
                    chromium,
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    f"--user-data-dir={tmp}",
                    "--virtual-time-budget=10000",
                    f"--screenshot={args.png.resolve()}",
                    "--window-size=1100,700",
                    args.out.resolve().as_uri(),
                ],
                check=False,
                capture_output=True,
                timeout=600,
            )
        print(f"wrote {args.png}" if args.png.is_file() else f"chromium wrote no {args.png}")


if __name__ == "__main__":
    main()
