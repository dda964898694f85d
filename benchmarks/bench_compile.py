"""The compiled force path's first call and its rate against eager, in a fresh process.

Builds the default-size potential (64 features, 3 layers, float32, random weights) for ethanol's
species, then prints: the seconds of the first compiled call (compilation, or loading the kernels
from ``--cache`` when an earlier process compiled them: run it twice to see both), the largest
force difference compiled - eager against the largest force, and energy + force evaluations per
second of B structures, eager and compiled, in the same process.

Usage: python benchmarks/bench_compile.py [--architecture painn] [--layout dense] [--batch 64]
       [--cache DIR] [--calls 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crmse_cli.model import ModelConfig, build_potential  # noqa: E402
from crmse_cli.model.compiled import CompiledForceField, use_cache_dir  # noqa: E402
from crmse_cli.model.forces import DEFAULT_MAX_PAIRS, force_field  # noqa: E402

ETHANOL = [6, 6, 8, 1, 1, 1, 1, 1, 1]


def main() -> None:
    """Print the first call's seconds, the force difference and both rates."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architecture", default="painn", choices=["painn", "schnet"])
    parser.add_argument("--layout", default="dense", choices=["dense", "sparse"])
    parser.add_argument("--batch", type=int, default=64, help="structures per call (B)")
    parser.add_argument("--cache", type=Path, help="inductor's cache folder (default: its own)")
    parser.add_argument("--calls", type=int, default=20, help="timed calls of each path")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.cache is not None:
        use_cache_dir(args.cache)
    torch.manual_seed(0)
    pot = build_potential(ModelConfig(architecture=args.architecture), [1, 6, 8])
    species = torch.tensor(ETHANOL)
    pos = torch.randn(args.batch, len(ETHANOL), 3) * 1.2
    eager = force_field(pot, species, layout=args.layout)
    fast = CompiledForceField(pot, species, eager, max_pairs=DEFAULT_MAX_PAIRS, layout=args.layout)
    t0, c0 = time.perf_counter(), time.process_time()
    _, f1 = fast(pos)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"first compiled call: {wall:.1f} s wall, {cpu:.1f} s CPU of this process; fallback: {fast.fallback_reason}")
    _, f0 = eager(pos)
    print(f"max |F_compiled - F_eager| {float((f1 - f0).abs().max()):.3g}, max |F| {float(f0.abs().max()):.3g}")
    rates = {}
    for name, fn in (("eager", eager), ("compiled", fast)):
        fn(pos)
        t0 = time.perf_counter()
        for _ in range(args.calls):
            fn(pos)
        rates[name] = args.batch * args.calls / (time.perf_counter() - t0)
        print(f"{name:9} {rates[name]:10.1f} structures/s (energy + forces, B = {args.batch})")
    print(f"compiled / eager {rates['compiled'] / rates['eager']:.2f}x")


if __name__ == "__main__":
    main()
