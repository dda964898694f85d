"""Throughput of the GNN potential on the CPU: the sampler's and the trainer's hot paths.

Prints, for ethanol (9 atoms) and aspirin (21 atoms):
- force evaluation: replica-steps per second (structures per second for energy + forces with
  ``create_graph=False``) at 1, 32, 128 and 512 replicas;
- training: frames per second of an energy + force MSE loss backward (``create_graph=True``)
  at batch 32.

Usage: python benchmarks/bench_model.py [--threads 1] [--architecture painn] [--features 64]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crmse_cli.model import ModelConfig, Potential, build_potential, energy_and_forces  # noqa: E402
from crmse_cli.model.allocator import tune_allocator  # noqa: E402
from crmse_cli.model.forces import DEFAULT_MAX_PAIRS  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "rmd17" / "andersx-rmd17-npz"
REPLICAS = (1, 32, 128, 512)


def load_molecule(
    name: str, n_frames: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """(positions (F,N,3), species (N,), energies (F,), forces (F,N,3), source) of an rMD17 molecule."""
    path = DATA / f"rmd17_{name}_train_01.npz"
    if path.exists():
        with np.load(path) as d:
            pos = torch.tensor(d["coords"][:n_frames])
            return (
                pos,
                torch.tensor(d["nuclear_charges"]).long(),
                torch.tensor(d["energies"][:n_frames]),
                torch.tensor(d["forces"][:n_frames]),
                "rMD17",
            )
    # No shared data: a random cloud of the right composition (same cost per evaluation).
    counts = {"ethanol": [6] * 2 + [8] + [1] * 6, "aspirin": [6] * 9 + [8] * 4 + [1] * 8}[name]
    gen = torch.Generator().manual_seed(0)
    n = len(counts)
    pos = torch.rand(n_frames, n, 3, generator=gen, dtype=torch.float64) * (1.2 * n ** (1 / 3))
    return pos, torch.tensor(counts), torch.zeros(n_frames), torch.zeros(n_frames, n, 3), "synthetic"


def rate(fn: Callable[[], None], items: int, seconds: float) -> float:
    """Items per second of ``fn`` (2 warm-up calls, then repeat for at least ``seconds``)."""
    fn()
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= 3:
            return items * calls / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--architecture", default="painn", choices=["painn", "schnet"])
    parser.add_argument("--features", type=int, default=ModelConfig.features)
    parser.add_argument("--layers", type=int, default=ModelConfig.layers)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument(
        "--max-pairs", type=int, default=None, help=f"replicas x N^2 per chunk (default {DEFAULT_MAX_PAIRS})"
    )
    parser.add_argument("--no-tune-allocator", action="store_true", help="keep glibc malloc's defaults")
    args = parser.parse_args()

    tuned = False if args.no_tune_allocator else tune_allocator()

    torch.set_num_threads(args.threads)
    config = ModelConfig(
        architecture=args.architecture, features=args.features, layers=args.layers, dtype=args.dtype
    )
    dtype = config.torch_dtype
    print(
        f"crmse model benchmark: torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"{config.architecture} F={config.features} L={config.layers} n_rbf={config.n_rbf} "
        f"cutoff {config.cutoff_A} A, {config.dtype}, malloc tuned: {tuned}"
    )
    max_pairs: int | None = DEFAULT_MAX_PAIRS if args.max_pairs is None else args.max_pairs
    for name in ("ethanol", "aspirin"):
        pos_all, species, energies, forces, source = load_molecule(name, max(REPLICAS))
        torch.manual_seed(0)
        potential = build_potential(config, species.tolist())
        potential.fit_shift_scale(species.numpy(), energies.numpy(), forces.numpy())
        pos_all = pos_all.to(dtype)
        print(f"\n{name} ({species.numel()} atoms, {source} geometries)")
        for n in REPLICAS:
            pos = pos_all[torch.arange(n) % pos_all.shape[0]].contiguous()
            r = bench_forces(potential, pos, species, max_pairs, args.seconds)
            print(f"  forces  {n:4d} replicas: {r:9.0f} replica-steps/s  ({1e3 * n / r:8.2f} ms per call)")
        batch = 32
        r = bench_training(
            potential, pos_all[:batch], species, energies[:batch], forces[:batch], args.seconds
        )
        print(f"  train   batch {batch}: {r:9.0f} frames/s  ({1e3 * batch / r:8.2f} ms per step)")


def bench_forces(
    potential: Potential, pos: torch.Tensor, species: torch.Tensor, max_pairs: int | None, seconds: float
) -> float:
    """Replica-steps per second of energy + forces without a graph (the samplers' call)."""

    def step() -> None:
        energy_and_forces(potential, pos, species, max_pairs=max_pairs)

    return rate(step, pos.shape[0], seconds)


def bench_training(
    potential: Potential,
    pos: torch.Tensor,
    species: torch.Tensor,
    e_ref: torch.Tensor,
    f_ref: torch.Tensor,
    seconds: float,
) -> float:
    """Frames per second of an energy + force MSE loss backward (create_graph=True)."""
    e_ref, f_ref = e_ref.to(pos.dtype), f_ref.to(pos.dtype)

    def step() -> None:
        potential.zero_grad(set_to_none=True)
        e, f = energy_and_forces(potential, pos, species, create_graph=True)
        loss = ((e - e_ref) ** 2).mean() + ((f - f_ref) ** 2).mean()
        loss.backward()  # type: ignore[no-untyped-call]

    return rate(step, pos.shape[0], seconds)


if __name__ == "__main__":
    main()
