"""Sampler throughput: crmse's batched BAOAB Langevin against ASE's Langevin, same potential.

For ethanol (9 atoms) and aspirin (21 atoms) this prints, measured side by side in one run:
- crmse ``LangevinBAOAB`` with B = 1, 32, 128, 512 replicas in one tensor: replica-steps per
  second and simulated picoseconds per hour (summed over replicas) at dt = 0.5 fs;
- ``ase.md.langevin.Langevin`` driving the project's ASE calculator (``CrmseCalculator``), one
  molecule at a time (ASE has no batching): steps per second;
- the ratio crmse / ASE at each B.

The potential is the default PaiNN (64 features, 3 layers, float32) with random weights: the cost
of a force evaluation does not depend on the weights, and the positions stay near the start over
a short benchmark. Start frames are real rMD17 frames when ``../shared/data`` is present.

Usage: python benchmarks/bench_sampler.py [--threads 1] [--steps 50] [--ase-steps 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_model import REPLICAS, load_molecule  # noqa: E402

from crmse_cli.model import ModelConfig, build_potential  # noqa: E402
from crmse_cli.model.allocator import tune_allocator  # noqa: E402
from crmse_cli.model.ase_calculator import CrmseCalculator  # noqa: E402
from crmse_cli.model.forces import force_field  # noqa: E402
from crmse_cli.sampling.langevin import LangevinBAOAB, masses_from_species  # noqa: E402

TIMESTEP_FS = 0.5
TEMPERATURE_K = 500.0
FRICTION_PER_FS = 0.01


def crmse_rate(
    potential: torch.nn.Module, pos: torch.Tensor, species: torch.Tensor, replicas: int, steps: int
) -> float:
    """Replica-steps per second of crmse's BAOAB with ``replicas`` copies of the start frames."""
    start = pos[torch.arange(replicas) % pos.shape[0]].float()
    sampler = LangevinBAOAB(
        force_field(potential, species),
        masses_from_species(species),
        TEMPERATURE_K,
        TIMESTEP_FS,
        FRICTION_PER_FS,
        torch.Generator().manual_seed(0),
    )
    state = sampler.init_state(start)
    for _ in range(3):  # warm-up (allocator, first-call overheads)
        state = sampler.step(state)
    t0 = time.perf_counter()
    for _ in range(steps):
        state = sampler.step(state)
    elapsed = time.perf_counter() - t0
    if not torch.isfinite(state.positions).all():
        raise SystemExit("bench_sampler: non-finite positions; the benchmark is invalid")
    return replicas * steps / elapsed


def ase_rate(potential: torch.nn.Module, pos: torch.Tensor, species: torch.Tensor, steps: int) -> float:
    """Steps per second of ASE's Langevin (one molecule) with the project's ASE calculator."""
    import warnings

    from ase import Atoms, units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    atoms = Atoms(numbers=species.numpy(), positions=pos[0].double().numpy())
    atoms.calc = CrmseCalculator(potential)
    with warnings.catch_warnings():  # the name of this helper changes across ASE releases
        warnings.simplefilter("ignore", DeprecationWarning)
        MaxwellBoltzmannDistribution(atoms, temperature_K=TEMPERATURE_K, rng=np.random.default_rng(0))
    Stationary(atoms)
    atoms.set_constraint(FixCom())  # ASE's recommended way to hold the centre of mass
    dyn = Langevin(
        atoms,
        timestep=TIMESTEP_FS * units.fs,
        temperature_K=TEMPERATURE_K,
        friction=FRICTION_PER_FS / units.fs,
        fixcm=False,
        rng=np.random.default_rng(0),
    )
    dyn.run(3)
    t0 = time.perf_counter()
    dyn.run(steps)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--steps", type=int, default=50, help="timed crmse steps per replica count")
    parser.add_argument("--ase-steps", type=int, default=100, help="timed ASE steps")
    parser.add_argument("--molecules", nargs="+", default=["ethanol", "aspirin"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tune_allocator()
    torch.manual_seed(0)

    print(
        f"bench_sampler: torch {torch.__version__}, {args.threads} thread(s), PaiNN 64x3 float32, "
        f"dt {TIMESTEP_FS} fs, {TEMPERATURE_K:g} K"
    )
    print(
        f"{'molecule':9} {'engine':22} {'replicas':>8} {'replica-steps/s':>16} {'ps/hour':>10} {'vs ASE':>8}"
    )
    for name in args.molecules:
        pos, species, _, _, source = load_molecule(name, 512)
        potential = build_potential(ModelConfig(), sorted(set(species.tolist())))
        potential.eval()
        ase = ase_rate(potential, pos, species, args.ase_steps)
        ps_per_hour = lambda r: r * TIMESTEP_FS * 3600 / 1000  # noqa: E731
        print(
            f"{name:9} {'ASE Langevin (1 mol)':22} {1:>8} {ase:>16.1f} {ps_per_hour(ase):>10.1f} {1.0:>8.2f}"
        )
        for b in REPLICAS:
            steps = max(5, args.steps if b <= 128 else args.steps // 2)
            r = crmse_rate(potential, pos, species, b, steps)
            print(
                f"{name:9} {'crmse BAOAB (batched)':22} {b:>8} {r:>16.1f} {ps_per_hour(r):>10.1f} {r / ase:>8.2f}"
            )
        print(f"  ({name}: start frames {source})")


if __name__ == "__main__":
    main()
