"""Cost per replica-step against molecule size N: the dense (B, N, N) layout and the cutoff edge list.

Molecules (hydrogens included), all with a 5 Å cutoff and the default PaiNN 64x3 float32 with
random weights (the cost does not depend on the weights):

- ``ethanol`` (9) and ``aspirin`` (21): rMD17 frames when ``../shared/data`` is present;
- ``alkane``: straight-chain C_n H_(2n+2) zig-zags (C-C 1.54 Å, C-H 1.09 Å, tetrahedral angles),
  N = 3n + 2: a sparse molecule, ~20 neighbours per atom inside 5 Å at large N;
- ``droplet``: k ethanol molecules (rMD17 frames) on a cubic grid of 4.6 Å spacing (liquid
  ethanol's density), random orientations, N = 9k: the densest case, ~50 neighbours per atom.

For each molecule it times the sampler's call ``energy_and_forces`` (energy + forces, the
default chunking) with ``layout="dense"`` and ``layout="sparse"`` interleaved (dense, sparse,
dense, ...), every size once per round (so all rows see the same load) over ``--repeats``
rounds, prints the best and median ms per replica-step, the
sparse layout's neighbour-list share (the O(N^2) distance filter) and the crossover: the
largest N at which dense still wins. ``graph.DENSE_MAX_ATOMS`` is set from this table.

Usage: python benchmarks/bench_layouts.py [--threads 1] [--repeats 3] [--kinds alkane droplet]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_model import load_molecule  # noqa: E402

from crmse_cli.model import ModelConfig, build_potential, energy_and_forces  # noqa: E402
from crmse_cli.model.allocator import tune_allocator  # noqa: E402
from crmse_cli.model.graph import DENSE_MAX_ATOMS, replica_neighbours  # noqa: E402

ALKANE_CARBONS = (3, 6, 10, 13, 20, 33, 50)  # N = 11, 20, 32, 41, 62, 101, 152
DROPLET_MOLECULES = (2, 3, 4, 5, 7, 11, 17)  # N = 18, 27, 36, 45, 63, 99, 153
SPACING_A = 4.6
PAIR_BUDGET = 2048  # replicas per size: min(128, PAIR_BUDGET // N), the same for both layouts


def alkane(n_carbons: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(positions (N, 3) Å, species (N,)) of a straight zig-zag C_n H_(2n+2)."""
    half = math.radians(109.47 / 2)
    step, rise = 1.54 * math.sin(half), 1.54 * math.cos(half)
    pos, species = [], []
    for k in range(n_carbons):
        carbon = torch.tensor([k * step, rise * (k % 2), 0.0], dtype=torch.float64)
        out = -1.0 if k % 2 == 0 else 1.0  # hydrogens point away from the chain
        pos.append(carbon)
        species.append(6)
        for z in (-1.0, 1.0):
            h = torch.tensor([0.0, out * math.cos(half), z * math.sin(half)], dtype=torch.float64)
            pos.append(carbon + 1.09 * h)
            species.append(1)
        if k in (0, n_carbons - 1):
            end = torch.tensor([-1.0 if k == 0 else 1.0, 0.0, 0.0], dtype=torch.float64)
            pos.append(carbon + 1.09 * end)
            species.append(1)
    return torch.stack(pos), torch.tensor(species)


def droplet(
    n_molecules: int, frames: torch.Tensor, species: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(positions, species) of ``n_molecules`` rotated ethanol frames on a cubic grid."""
    gen = torch.Generator().manual_seed(n_molecules)
    side = math.ceil(n_molecules ** (1 / 3))
    pos = []
    for m in range(n_molecules):
        cell = torch.tensor([m % side, (m // side) % side, m // side**2], dtype=torch.float64)
        frame = frames[m % frames.shape[0]].double()
        q, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
        pos.append((frame - frame.mean(0)) @ q.T + SPACING_A * cell)
    return torch.cat(pos), species.repeat(n_molecules)


def molecules(kinds: list[str]) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(label, positions (N, 3), species (N,)) of every molecule of the sweep, by size."""
    out = []
    eth, eth_species, *_ = load_molecule("ethanol", 64)
    asp, asp_species, *_ = load_molecule("aspirin", 1)
    out.append(("ethanol", eth[0], eth_species))
    out.append(("aspirin", asp[0], asp_species))
    if "alkane" in kinds:
        out += [(f"alkane C{n}", *alkane(n)) for n in ALKANE_CARBONS]
    if "droplet" in kinds:
        out += [(f"droplet {k} EtOH", *droplet(k, eth, eth_species)) for k in DROPLET_MOLECULES]
    return sorted(out, key=lambda m: int(m[2].numel()))


def main() -> None:
    """Run the sweep and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (best and median)")
    parser.add_argument("--kinds", nargs="+", default=["alkane", "droplet"], choices=["alkane", "droplet"])
    parser.add_argument("--max-atoms", type=int, default=1000, help="skip molecules larger than this")
    parser.add_argument("--dense-max-atoms", type=int, default=1000, help="time dense only up to this N")
    args = parser.parse_args()
    tune_allocator()
    torch.set_num_threads(args.threads)
    config = ModelConfig()
    print(f"bench_layouts: torch {torch.__version__}, {torch.get_num_threads()} thread(s), PaiNN "
          f"F={config.features} L={config.layers} float32, cutoff {config.cutoff_A} A, "
          f"DENSE_MAX_ATOMS = {DENSE_MAX_ATOMS}")  # fmt: skip
    print(f"{'molecule':18} {'N':>4} {'B':>4} {'nbrs/atom':>9} {'dense ms/rs':>18} {'sparse ms/rs':>18} "
          f"{'ms/atom':>9} {'nlist':>7} {'sparse/dense':>12}")  # fmt: skip
    cases = []
    for label, pos, species in molecules(args.kinds):
        n = int(species.numel())
        if n > args.max_atoms:
            continue
        replicas = max(1, min(128, PAIR_BUDGET // n))
        gen = torch.Generator().manual_seed(n)
        batch = (pos.float() + 0.05 * torch.randn(replicas, n, 3, generator=gen)).contiguous()
        torch.manual_seed(0)
        potential = build_potential(config, sorted(set(species.tolist())))
        layouts = ("dense", "sparse") if n <= args.dense_max_atoms else ("sparse",)
        for layout in layouts:  # warm-up: templates, allocator
            energy_and_forces(potential, batch, species, layout=layout)
        cases.append((label, n, replicas, batch, species, potential, layouts))
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    for _ in range(args.repeats):  # every size and layout once per round: they share the load
        for label, _n, replicas, batch, species, potential, layouts in cases:
            for layout in layouts:
                start = time.perf_counter()
                energy_and_forces(potential, batch, species, layout=layout)
                times[label, layout].append((time.perf_counter() - start) / replicas)
            start = time.perf_counter()
            replica_neighbours(batch, config.cutoff_A)
            times[label, "nlist"].append((time.perf_counter() - start) / replicas)
    rows = []
    for label, n, replicas, batch, _species, _potential, layouts in cases:
        best = {k: min(times[label, k]) for k in (*layouts, "nlist")}
        med = {k: statistics.median(times[label, k]) for k in (*layouts, "nlist")}
        neighbours = replica_neighbours(batch, config.cutoff_A)[0].numel() / (replicas * n)
        dense = f"{1e3 * best['dense']:8.2f} ({1e3 * med['dense']:7.2f})" if "dense" in best else f"{'-':>18}"
        ratio = f"{best['sparse'] / best['dense']:12.2f}" if "dense" in best else f"{'-':>12}"
        rows.append((n, best.get("dense", math.inf), best["sparse"]))
        print(f"{label:18} {n:4d} {replicas:4d} {neighbours:9.1f} {dense} "
              f"{1e3 * best['sparse']:8.2f} ({1e3 * med['sparse']:7.2f}) {1e3 * best['sparse'] / n:9.3f} "
              f"{100 * best['nlist'] / best['sparse']:6.1f}% {ratio}")  # fmt: skip
    dense_wins = [n for n, d, s in rows if d <= s]
    sparse_wins = [n for n, d, s in rows if s < d]
    print("ms/rs: milliseconds per replica-step, best of the rounds (median in brackets); "
          "ms/atom: sparse ms/rs divided by N; nlist: share of the sparse time spent finding neighbours")  # fmt: skip
    print(f"dense wins at N = {dense_wins}; sparse wins at N = {sparse_wins}")
    beyond = [(n, s) for n, _, s in rows if n > max(dense_wins, default=0)]
    if len(beyond) >= 2:
        xs = [math.log(n) for n, _ in beyond]
        ys = [math.log(s) for _, s in beyond]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
        print(f"sparse beyond the crossover: ms/rs ~ N^{slope:.2f} (least squares on log-log, N = "
              f"{[n for n, _ in beyond]})")  # fmt: skip


if __name__ == "__main__":
    main()
