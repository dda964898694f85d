"""Print a markdown table of evaluate runs (the tables of docs/results.md), read from the registry.

Rows are metrics (test MAE, energy KS, h(r) MAE, dihedral profile errors, stability, configurational
and virial temperatures); columns are the runs given. With --mean, adds mean and spread (half the
range) over groups of columns given as "label=run1,run2,...", and a row of stable replicas pooled over
each group with Fisher's exact test (two-sided) of every group against the first. The table logic is
the product's (`crmse_cli.analysis.study`, also `crmse table`); this script only reads the registry.

Usage:
  CRMSE_HOME=... python benchmarks/study_table.py EVAL_RUN [EVAL_RUN ...]
  CRMSE_HOME=... python benchmarks/study_table.py --mean MSE=eval-a,eval-b CRMSE=eval-c,eval-d
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crmse_cli.analysis.study import groups_table, runs_table  # noqa: E402
from crmse_cli.errors import CrmseError  # noqa: E402
from crmse_cli.registry.store import Registry  # noqa: E402
from crmse_cli.workspace import Workspace  # noqa: E402


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
        lines = runs_table({ref: values(ref) for ref in args.runs})
    else:
        groups = {}
        for spec in args.runs:
            label, _, refs = spec.partition("=")
            groups[label] = [values(r) for r in refs.split(",")]
        lines = groups_table(groups)
    print("\n".join(lines))


if __name__ == "__main__":
    try:
        main()
    except CrmseError as exc:  # an unknown run, a missing dataset: one line, exit 1
        sys.exit(f"error: {exc}")
