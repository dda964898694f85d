"""Print a markdown table of evaluate runs (the tables of docs/results.md), read from the registry.

Rows are metrics (test MAE, energy KS, h(r) MAE, dihedral profile errors, stability, configurational
temperatures); columns are the runs given. With --mean, adds mean and spread (half the range) over
groups of columns given as "label=run1,run2,...", and a row of stable replicas pooled over each group with
Fisher's exact test (two-sided) of every group against the first.

Usage:
  CRMSE_HOME=... python benchmarks/study_table.py EVAL_RUN [EVAL_RUN ...]
  CRMSE_HOME=... python benchmarks/study_table.py --mean MSE=eval-a,eval-b CRMSE=eval-c,eval-d
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crmse_cli.errors import CrmseError  # noqa: E402
from crmse_cli.registry.store import Registry  # noqa: E402
from crmse_cli.workspace import Workspace  # noqa: E402

ROWS = (
    ("test_energy_mae", "test energy MAE (kcal/mol)"),
    ("test_force_mae", "test force MAE (kcal/mol/Å)"),
    ("energy_ks", "energy KS vs DFT"),
    ("hr_mae", "h(r) MAE"),
    ("dihedral_profile_error.hydroxyl", "hydroxyl profile error (kcal/mol)"),
    ("dihedral_profile_error.methyl", "methyl profile error (kcal/mol)"),
    ("stable_fraction", "replicas that stayed physical"),
    ("n_left_collapse", "replicas that collapsed (pair test)"),
    ("n_left_bond", "replicas that broke a bond"),
    ("median_leave_time_ps", "median leave time of those that left (ps)"),
    ("share_outside_support", "share of frames outside the DFT support"),
    ("min_pair_distance_sample", "closest pair seen (Å)"),
    ("energy_mean_sample_minus_ref", "mean energy, samples - DFT (kcal/mol)"),
    ("energy_std_sample", "energy spread of samples (kcal/mol; DFT 4.26)"),
    ("config_temperature_sample_K", "T_conf of samples (K)"),
    ("config_temperature_ref_K", "T_conf of DFT reference (K)"),
    ("sampling_temperature_K", "sampling temperature (K)"),
)


def fmt(v: float) -> str:
    if v != v:
        return "-"
    return f"{v:.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--mean", action="store_true", help="columns are label=run1,run2,... groups")
    args = parser.parse_args()
    reg = Registry.open(Workspace.resolve(None))

    def values(ref: str) -> dict[str, float]:
        run = reg.get_run(ref)
        return {k: m.value for k, m in reg.final_metrics(run.id).items()}

    if not args.mean:
        cols = {ref: values(ref) for ref in args.runs}
        print("| metric | " + " | ".join(cols) + " |")
        print("|---|" + "---|" * len(cols))
        for key, title in ROWS:
            print(f"| {title} | " + " | ".join(fmt(c.get(key, math.nan)) for c in cols.values()) + " |")
        return
    groups = {}
    for spec in args.runs:
        label, _, refs = spec.partition("=")
        groups[label] = [values(r) for r in refs.split(",")]
    print("| metric | " + " | ".join(f"{k} (n={len(v)})" for k, v in groups.items()) + " |")
    print("|---|" + "---|" * len(groups))
    for key, title in ROWS:
        cells = []
        for vals in groups.values():
            xs = [v[key] for v in vals if key in v]
            if not xs:
                cells.append("-")
                continue
            mean = sum(xs) / len(xs)
            half = (max(xs) - min(xs)) / 2
            cells.append(f"{fmt(mean)} ± {fmt(half)}" if len(xs) > 1 else fmt(mean))
        print(f"| {title} | " + " | ".join(cells) + " |")
    # Pooled stability over the seeds, and Fisher's exact test of each group against the first.
    pooled = {}
    for label, vals in groups.items():
        n = sum(int(v.get("n_replicas", 0)) for v in vals)
        left = sum(int(v.get("n_left", 0)) for v in vals)
        pooled[label] = (n - left, left)
    if all(n_stable + left > 0 for n_stable, left in pooled.values()):
        from scipy.stats import fisher_exact

        first = next(iter(pooled.values()))
        cells = []
        for i, (label, (stable, left)) in enumerate(pooled.items()):
            cell = f"{stable}/{stable + left}"
            if i:
                cell += f" (Fisher p = {fisher_exact([list(first), [stable, left]]).pvalue:.2g})"
            cells.append(cell)
        print("| stable replicas, pooled over seeds | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    try:
        main()
    except CrmseError as exc:  # an unknown run, a missing dataset: one line, exit 1
        sys.exit(f"error: {exc}")
