"""Print the per-update log of regularize runs (what the chains did), every N updates.

Columns: L_MSE, L_C, mean chain energy minus mean data energy (kcal/mol), the lowest chain energy
minus the mean data energy, chain-vs-data energy KS, the smallest interatomic distance over all
chains (Å), the share of chains outside the DFT support (a pair closer than its DFT minimum minus
0.3 Å), resets, and the validation MAEs where logged.

Usage: CRMSE_HOME=... python benchmarks/crmse_log.py RUN [RUN ...] [--every 25] [--markdown]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crmse_cli.errors import CrmseError  # noqa: E402
from crmse_cli.registry.store import Registry  # noqa: E402
from crmse_cli.workspace import Workspace  # noqa: E402

COLUMNS = (
    ("loss_mse", "L_MSE"),
    ("loss_c", "L_C"),
    ("gap", "E_chain-E_data"),
    ("gap_min", "E_chain_min-E_data"),
    ("chain_ks", "KS"),
    ("chain_min_pair", "min pair Å"),
    ("chains_outside", "outside"),
    ("resets", "resets"),
    ("val_energy_mae", "val E MAE"),
    ("val_force_mae", "val F MAE"),
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--markdown", action="store_true", help="one markdown table of all runs")
    args = parser.parse_args()
    reg = Registry.open(Workspace.resolve(None))
    if args.markdown:
        print("| run | update | " + " | ".join(title for _, title in COLUMNS) + " |")
        print("|---|---|" + "---|" * len(COLUMNS))
    for ref in args.runs:
        run = reg.get_run(ref)
        series: dict[str, dict[int, float]] = {}
        for m in reg.metrics(run.id):
            if m.step is not None:
                series.setdefault(m.name, {})[m.step] = m.value
        steps = sorted(series.get("loss_c", {}))
        if not steps:
            print(f"{run.name or run.id}: no updates logged")
            continue
        for s in steps:
            data = series["energy_data"][s]
            series.setdefault("gap", {})[s] = series["energy_chains"][s] - data
            series.setdefault("gap_min", {})[s] = series["energy_chains_min"][s] - data
        lam = run.config.get("contrastive", {}).get("lambda_", run.config.get("lambda_"))
        shown = [s for s in steps if s == 1 or s % args.every == 0 or s == steps[-1]]
        if args.markdown:
            for i, s in enumerate(shown):
                label = f"{run.name or run.id} (lambda {lam})" if i == 0 else ""
                cells = [series.get(key, {}).get(s) for key, _ in COLUMNS]
                print(
                    f"| {label} | {s} | "
                    + " | ".join("" if v is None else f"{v:.3g}" for v in cells)
                    + " |"
                )
            continue
        print(f"\n{run.name or run.id} ({run.status}, lambda {lam})")
        print("update " + " ".join(f"{title:>18}" for _, title in COLUMNS))
        for s in shown:
            cells = []
            for key, _ in COLUMNS:
                v = series.get(key, {}).get(s)
                cells.append(f"{v:>18.3f}" if v is not None else f"{'':>18}")
            print(f"{s:>6} " + " ".join(cells))


if __name__ == "__main__":
    try:
        main()
    except CrmseError as exc:  # an unknown run, a missing dataset: one line, exit 1
        sys.exit(f"error: {exc}")
