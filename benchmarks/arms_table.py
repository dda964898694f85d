"""Issue 29's arm tables from metric exports (``crmse table ... --export``): force cost and stability.

Usage:
    python benchmarks/arms_table.py EXPORT.json [EXPORT.json ...] --tag r2 --seeds 0 1 2

Runs are found by the names ``benchmarks/budget_study.sh`` gives them: the parent
``TAG-mse-sS``, the arms ``TAG-ARM-sS`` (regularize runs) and their evaluations
``TAG-eval-ARM-sS`` (``TAG-eval-mse-sS`` for the parent). Prints two markdown tables:

1. the force side, per arm and seed: test force MAE and RMSE and energy MAE against the parent
   (relative change), and the training-batch L_MSE and the chains' outside-support share at the
   last update;
2. stability, per seed: replicas that left in 10 ps at 500 K, Fisher's p against the lambda = 0
   control of the same parent, and across seeds the Cochran-Mantel-Haenszel test (stratified
   by seed) with the Breslow-Day-Tarone heterogeneity p.

Only the exports are read, so the tables regenerate from ``docs/study/`` with no registry.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from scipy.stats import fisher_exact
from study_arms import ARMS as STUDY_ARMS  # run as a script from benchmarks/

from crmse_cli.analysis.strata import cmh_test

ARMS = tuple(name for name in STUDY_ARMS if name != "mse")
"""Every arm after the parent, in study_arms.py's order."""
TITLES = {name: arm.title for name, arm in STUDY_ARMS.items()}
RERUN = "r"
"""A sample run again under the arm's name + "r" (``TAG-eval-c15r-sS``: the first one was killed)."""
SAME_PICK = {"bpolh": "bpol"}
"""An arm whose model is another's when both budget runs chose the same update (same seed, same
updates, only the scoring frames differ): its sample is that arm's."""


def _load(paths: list[Path]) -> dict[str, dict[str, float]]:
    runs: dict[str, dict[str, float]] = {}
    for path in paths:
        for run in json.loads(path.read_text())["runs"]:
            runs[run["name"]] = {k: float(v[0]) for k, v in run["metrics"].items() if v[0] is not None}
    return runs


def _rel(value: float | None, parent: float | None) -> str:
    if value is None or parent is None or parent == 0:
        return "-"
    return f"{100 * (value / parent - 1):+.1f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def force_table(runs: dict[str, dict[str, float]], tag: str, seeds: list[int]) -> list[str]:
    """Markdown rows of the force side."""
    head = "| arm | seed | test force MAE (kcal/mol/Å) | Δ force MAE | Δ force RMSE | Δ energy MAE | L_MSE, last update | chains outside, last update | budget choice (update) |"
    lines = [head, "|" + "---|" * 9]
    for arm in ("mse", *ARMS):
        for s in seeds:
            parent = runs.get(f"{tag}-mse-s{s}")
            run = runs.get(f"{tag}-{arm}-s{s}")
            if run is None or parent is None:
                continue
            lines.append(
                f"| {TITLES[arm]} | {s} | {_num(run.get('test_force_mae'))} "
                f"| {_rel(run.get('test_force_mae'), parent.get('test_force_mae'))} "
                f"| {_rel(run.get('test_force_rmse'), parent.get('test_force_rmse'))} "
                f"| {_rel(run.get('test_energy_mae'), parent.get('test_energy_mae'))} "
                f"| {_num(run.get('loss_mse'))} | {_num(run.get('chains_outside'))} "
                f"| {_num(run.get('budget_choice_update'), 4)} |"
            )
    return lines


def _left(runs: dict[str, dict[str, float]], name: str) -> tuple[int, int] | None:
    run = runs.get(name)
    if run is None or "n_replicas" not in run or "n_left" not in run:
        return None
    return int(run["n_left"]), int(run["n_replicas"])


def _same_pick(runs: dict[str, dict[str, float]], a: str, b: str) -> bool:
    ra, rb = runs.get(a), runs.get(b)
    if ra is None or rb is None:
        return False
    keys = ("budget_choice_update", "test_force_mae")
    return all(k in ra and k in rb and ra[k] == rb[k] for k in keys)


def stability_table(runs: dict[str, dict[str, float]], tag: str, seeds: list[int]) -> list[str]:
    """Markdown rows of stability: left per seed, Fisher vs the control, CMH across seeds."""
    lines = [
        "| arm | "
        + " | ".join(f"left, s{s} (Fisher p vs control)" for s in seeds)
        + " | CMH p vs control (odds ratio; heterogeneity p) |"
    ]
    lines.append("|" + "---|" * (len(seeds) + 2))
    for arm in ("mse", *ARMS):
        cells, tables = [], []
        for s in seeds:
            got = _left(runs, f"{tag}-eval-{arm}-s{s}") or _left(runs, f"{tag}-eval-{arm}{RERUN}-s{s}")
            twin = SAME_PICK.get(arm)
            if (
                got is None
                and twin is not None
                and _same_pick(runs, f"{tag}-{arm}-s{s}", f"{tag}-{twin}-s{s}")
            ):
                got = _left(runs, f"{tag}-eval-{twin}-s{s}")
            ctl = _left(runs, f"{tag}-eval-l0-s{s}")
            if got is None:
                cells.append("-")
                continue
            cell = f"{got[0]}/{got[1]}"
            if ctl is not None and arm != "l0":
                table = [[got[0], got[1] - got[0]], [ctl[0], ctl[1] - ctl[0]]]
                cell += f" (p = {fisher_exact(table)[1]:.2g})"
                tables.append(table)
            cells.append(cell)
        if all(c == "-" for c in cells):
            continue
        if len(tables) >= 2:
            test = cmh_test(tables)
            cmh = f"{test.pvalue:.2g} ({test.odds_ratio:.2g}; {test.heterogeneity_pvalue:.2g})"
        else:
            cmh = "-"
        lines.append(f"| {TITLES[arm]} | " + " | ".join(cells) + f" | {cmh} |")
    return lines


def main() -> None:
    """Print both tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("exports", nargs="+", type=Path)
    parser.add_argument("--tag", default="r2")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    runs = _load(args.exports)
    print("\n".join(force_table(runs, args.tag, args.seeds)))
    print()
    print("\n".join(stability_table(runs, args.tag, args.seeds)))


if __name__ == "__main__":
    main()
