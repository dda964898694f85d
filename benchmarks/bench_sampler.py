"""Sampler throughput: crmse's batched BAOAB Langevin against ASE's Langevin, same potential.

For ethanol (9 atoms) and aspirin (21 atoms) this prints, measured side by side in one run:
- crmse ``LangevinBAOAB`` with B = 1, 32, 128, 512 replicas in one tensor: replica-steps per
  second and simulated picoseconds per hour (summed over replicas) at dt = 0.5 fs;
- ``ase.md.langevin.Langevin`` driving the project's ASE calculator (``CrmseCalculator``), one
  molecule at a time (ASE has no batching): steps per second;
- the ratio crmse / ASE at each B;
- with ``--processes N``: ``crmse sample``'s worker processes (crmse_cli.stages.sample_shards, one
  torch thread each, stability monitor and trajectory recorder on, as in a sample run) with
  ``--replicas`` replicas on 1 worker and sharded over N workers, alternating ``--rounds`` times,
  the best round of each: replica-steps per second between the progress reports of step 100 and
  the last step (start-up excluded), and the speed-up N workers / 1 worker.

The potential is the default PaiNN (64 features, 3 layers, float32) with random weights: the cost
of a force evaluation does not depend on the weights, and the positions stay near the start over
a short benchmark. Start frames are real rMD17 frames when ``../shared/data`` is present.

With ``--compile`` each B is also timed with the compiled force path (``model/compiled.py``,
``crmse sample --compile``) in the same run, with the compiled / eager ratio and the seconds the
first compiled call took (compilation, or loading inductor's cache: ``--compile-cache``).

Usage: python benchmarks/bench_sampler.py [--threads 1] [--steps 50] [--ase-steps 100]
       [--processes 2 --replicas 128 --process-steps 300 --rounds 2] [--molecules ethanol]
       [--batches 64 128] [--compile [--compile-cache DIR]]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
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


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK_HELP = (
    "wall (default) or cpu: this process's CPU seconds, which on a machine loaded by other jobs "
    "approximate a quiet core's wall seconds (one thread; contention still inflates them a little)"
)
CLOCK = [time.perf_counter]  # the in-process timers' clock (--clock)


def crmse_rate(
    potential: torch.nn.Module,
    pos: torch.Tensor,
    species: torch.Tensor,
    replicas: int,
    steps: int,
    compiled: bool = False,
) -> tuple[float, float]:
    """(replica-steps per second, seconds of the first step) of crmse's BAOAB, ``replicas`` copies."""
    start = pos[torch.arange(replicas) % pos.shape[0]].float()
    sampler = LangevinBAOAB(
        force_field(potential, species, compiled=compiled),
        masses_from_species(species),
        TEMPERATURE_K,
        TIMESTEP_FS,
        FRICTION_PER_FS,
        torch.Generator().manual_seed(0),
    )
    t0 = time.perf_counter()
    state = sampler.init_state(start)  # the first force call (compiles on the compiled path)
    first_s = time.perf_counter() - t0
    for _ in range(3):  # warm-up (allocator, first-call overheads)
        state = sampler.step(state)
    t0 = CLOCK[0]()
    for _ in range(steps):
        state = sampler.step(state)
    elapsed = CLOCK[0]() - t0
    if not torch.isfinite(state.positions).all():
        raise SystemExit("bench_sampler: non-finite positions; the benchmark is invalid")
    return replicas * steps / elapsed, first_s


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
    t0 = CLOCK[0]()
    dyn.run(steps)
    return steps / (CLOCK[0]() - t0)


def process_rate(
    potential: torch.nn.Module,
    pos: torch.Tensor,
    species: torch.Tensor,
    args: argparse.Namespace,
    n: int,
    *,
    compile_cache: Path | None = None,
) -> float:
    """Replica-steps per second of ``crmse sample``'s workers: ``args.replicas`` over ``n`` processes.

    ``compile_cache``: the workers compile their forces, kernels kept there (``sample --compile``).
    """
    from crmse_cli.model.checkpoint import save_checkpoint
    from crmse_cli.sampling.monitor import StabilityMonitor
    from crmse_cli.stages.sample import SampleConfig, report_interval
    from crmse_cli.stages.sample_shards import remove_shards, sample_in_processes

    cfg = SampleConfig(
        replicas=args.replicas, steps=args.process_steps, temperature_K=TEMPERATURE_K, processes=n
    )
    start = pos[torch.arange(args.replicas) % pos.shape[0]].double().numpy()
    monitor = StabilityMonitor.from_reference(species.numpy(), pos.double().numpy())
    first = report_interval(cfg)
    if args.process_steps < 2 * first:
        raise SystemExit(f"bench_sampler: --process-steps must be >= {2 * first}")
    times: dict[int, float] = {}

    def on_report(step: int, time_fs: float, n_left: int, temp: float) -> None:
        times[step] = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "potential.pt"
        save_checkpoint(ckpt, potential, extra={"dataset": "bench"})
        try:
            sample_in_processes(
                ckpt, cfg, start, species.numpy(), monitor, Path(tmp) / "shards", on_report,
                compile_cache=compile_cache,
            )
        finally:
            remove_shards(Path(tmp) / "shards")
    last = max(times)
    return args.replicas * (last - first) / (times[last] - times[first])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--steps", type=int, default=50, help="timed crmse steps per replica count")
    parser.add_argument("--ase-steps", type=int, default=100, help="timed ASE steps")
    parser.add_argument("--molecules", nargs="+", default=["ethanol", "aspirin"])
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="also time crmse sample's workers: 1 vs this many (default: off)",
    )
    parser.add_argument("--replicas", type=int, default=128, help="replicas of the process comparison")
    parser.add_argument("--process-steps", type=int, default=300, help="steps of each process run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating 1-worker / N-worker rounds")
    parser.add_argument("--clock", choices=CLOCKS, default="wall", help=CLOCK_HELP)
    parser.add_argument("--batches", type=int, nargs="+", default=list(REPLICAS), help="replica counts B")
    parser.add_argument("--compile", action="store_true", help="also time the compiled force path")
    parser.add_argument("--compile-cache", type=Path, help="inductor's cache folder (default: its own)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    CLOCK[0] = CLOCKS[args.clock]
    tune_allocator()
    torch.manual_seed(0)
    if args.compile_cache is not None:
        from crmse_cli.model.compiled import use_cache_dir

        use_cache_dir(args.compile_cache)

    print(
        f"bench_sampler: torch {torch.__version__}, {args.threads} thread(s), PaiNN 64x3 float32, "
        f"dt {TIMESTEP_FS} fs, {TEMPERATURE_K:g} K, {args.clock} clock"
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
        for b in args.batches:
            steps = max(5, args.steps if b <= 128 else args.steps // 2)
            r, _ = crmse_rate(potential, pos, species, b, steps)
            print(
                f"{name:9} {'crmse BAOAB (batched)':22} {b:>8} {r:>16.1f} {ps_per_hour(r):>10.1f} {r / ase:>8.2f}"
            )
            if args.compile:
                rc, first_s = crmse_rate(potential, pos, species, b, steps, compiled=True)
                print(
                    f"{name:9} {'crmse BAOAB compiled':22} {b:>8} {rc:>16.1f} {ps_per_hour(rc):>10.1f} "
                    f"{rc / ase:>8.2f}  (compiled/eager {rc / r:.2f}x; first call {first_s:.0f} s)",
                    flush=True,
                )
        if args.processes > 1:
            rates: dict[int, list[float]] = {1: [], args.processes: []}
            for _ in range(args.rounds):
                for n in rates:
                    rates[n].append(process_rate(potential, pos, species, args, n))
            for n, rs in rates.items():
                r = max(rs)
                label = f"crmse sample, {n} proc"
                rounds = ", ".join(f"{x:.0f}" for x in rs)
                print(
                    f"{name:9} {label:22} {args.replicas:>8} {r:>16.1f} {ps_per_hour(r):>10.1f} "
                    f"{r / ase:>8.2f}  (rounds: {rounds})"
                )
            speedup = max(rates[args.processes]) / max(rates[1])
            print(f"  ({name}: {args.processes} processes / 1 process = {speedup:.2f}x, one thread each)")
        print(f"  ({name}: start frames {source})")


if __name__ == "__main__":
    main()
