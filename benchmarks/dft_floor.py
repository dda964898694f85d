"""The noise floor of every distribution metric: two disjoint halves of the DFT reference frames.

A sampler cannot be judged closer to DFT than DFT is to itself on the same number of frames.
Prints, per molecule, the metrics of the first half of the reference frames (rows in neither
train_01 nor test_01, in trajectory order) against the second half, and of a random half split.

Usage: python benchmarks/dft_floor.py [--archive ../shared/data/rmd17-mini.tar.bz2]
                                      [--molecules ethanol aspirin]
       python benchmarks/dft_floor.py --dataset eth-xtb500 [--home DIR]   # a registered dataset
                                                                          # (e.g. a generated xTB reference)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crmse_cli.analysis.metrics import distribution_metrics  # noqa: E402
from crmse_cli.data import rmd17  # noqa: E402
from crmse_cli.data.dataset import Dataset  # noqa: E402

SHOW = (
    "energy_ks",
    "hr_mae",
    "dihedral_profile_error.hydroxyl",
    "dihedral_profile_error.methyl",
    "dihedral_profile_error.ester",
    "dihedral_profile_error.carboxylic_acid",
    "dihedral_profile_error.acid_hydroxyl",
    "dihedral_profile_error.ester_acyl",
    "dihedral_profile_error.acetyl_methyl",
    "pair_hist_mae_mean",
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--archive", type=Path, default=REPO.parent / "shared" / "data" / "rmd17-mini.tar.bz2"
    )
    parser.add_argument("--molecules", nargs="+", default=["ethanol", "aspirin"])
    parser.add_argument("--dataset", nargs="+", help="registered datasets instead of the archive")
    parser.add_argument("--home", type=Path, help="the workspace of --dataset (default: CRMSE_HOME)")
    parser.add_argument("--temperature-K", type=float, default=500.0)
    args = parser.parse_args()
    for mol, data in _datasets(args):
        ref = data.reference_indices("01")
        halves = {
            "trajectory order": (ref[: len(ref) // 2], ref[len(ref) // 2 :]),
            "random": tuple(np.array_split(np.random.default_rng(0).permutation(ref), 2)),
        }
        for label, (a, b) in halves.items():
            m = distribution_metrics(
                data.species,
                data.positions[a],
                data.energies[a],
                data.positions[b],
                data.energies[b],
                args.temperature_K,
            ).metrics
            shown = "  ".join(f"{k} {m[k][0]:.3f}" for k in SHOW if k in m)
            print(f"{mol:<8} {label:<17} {len(a)} vs {len(b)} frames: {shown}", flush=True)


def _datasets(args: argparse.Namespace) -> Iterator[tuple[str, Dataset]]:
    if args.dataset:
        from crmse_cli.registry.store import Registry
        from crmse_cli.stages._models import load_dataset
        from crmse_cli.workspace import Workspace

        reg = Registry.open(Workspace.resolve(args.home), read_only=True)
        for name in args.dataset:
            yield name, load_dataset(reg, name)
        return
    for mol in args.molecules:
        yield mol, rmd17.to_dataset(mol, rmd17.read_archive(args.archive, mol), {})


if __name__ == "__main__":
    main()
