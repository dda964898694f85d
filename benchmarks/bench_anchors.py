"""The anchors of issue 25 in one run: ASE, torch-sim and crmse on the same cores, same weights.

For ethanol (9 atoms) and aspirin (21 atoms), replica-steps per second of Langevin dynamics
(BAOAB, dt 0.5 fs, 500 K, gamma 0.01/fs, float32), measured side by side in one process:

- ASE's ``Langevin`` on one molecule through crmse's ASE calculator (``CrmseCalculator``);
- torch-sim's batched ``nvt_langevin`` at B replicas with the potential behind torch-sim's
  ``ModelInterface`` (``crmse_cli/model/torchsim_model.py``), on 1 thread and on P threads
  (torch-sim runs one process; P = ``--processes``: the same cores as crmse's P workers);
- crmse's own ``LangevinBAOAB`` at B replicas in this process, eager, and with ``--compile``
  compiled (``model/compiled.py``; torch-sim then also gets the compiled forces, which isolates
  the integrators);
- ``crmse sample``'s worker processes (``sample_shards``, one thread each, stability monitor and
  trajectory recorder on) with B replicas on 1 and on P processes (``--compile``: compiled too).

Each figure is the best of ``--rounds`` interleaved rounds. The table gives each rate against
ASE's and against torch-sim's eager rate on the same number of cores, the thread settings and
the load average before and after, which a figure must be read with. With mace-torch installed
(the ``mace`` extra), the same rows for a fresh MACE (crmse's defaults: 64x0e, 2 interactions),
plus torch-sim's own ``MaceModel`` on the same weights; no process rows for MACE.

The potential is a freshly initialised PaiNN of the default config (seed 0), or ``--checkpoint``:
a force evaluation costs the same whatever the weights. Start frames: the built-in geometries
(ASE's ethanol, rMD17's first aspirin frame) with 0.05 Å noise per replica, so no data is needed.

Usage: python benchmarks/bench_anchors.py [--quick] [--replicas 128] [--steps 50]
       [--mace-steps 10] [--ase-steps 100] [--processes 2] [--process-steps 300] [--rounds 2]
       [--compile [--compile-cache DIR]] [--checkpoint FILE [--trust-code]]
       [--molecules ethanol aspirin] [--no-mace]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_sampler import (  # noqa: E402
    FRICTION_PER_FS,
    TEMPERATURE_K,
    TIMESTEP_FS,
    ase_rate,
    crmse_rate,
    process_rate,
)

from crmse_cli.data.geometries import builtin_geometry  # noqa: E402
from crmse_cli.errors import CrmseError  # noqa: E402
from crmse_cli.model import ModelConfig, build_potential, load_checkpoint  # noqa: E402
from crmse_cli.model.allocator import tune_allocator  # noqa: E402
from crmse_cli.model.config import MACE_DEFAULTS  # noqa: E402
from crmse_cli.model.potential import Potential  # noqa: E402
from crmse_cli.sampling.langevin import masses_from_species  # noqa: E402

QUICK = {"replicas": 16, "steps": 5, "mace_steps": 2, "ase_steps": 10, "process_steps": 200, "rounds": 1}
"""``--quick``: the settings of the smoke run (every row, seconds each; figures not for quoting)."""

NOISE_A = 0.05  # per-replica displacement of the start geometry, Å


@dataclass
class Row:
    """One measured engine: replica-steps per second on ``processes`` x ``threads`` cores."""

    molecule: str
    model: str
    engine: str
    processes: int
    threads: int
    replicas: int
    rates: list[float] = field(default_factory=list)  # replica-steps/s of each round
    note: str = ""

    @property
    def rate(self) -> float:
        """The best round (a shared machine only ever slows a round down)."""
        return max(self.rates) if self.rates else float("nan")

    @property
    def cores(self) -> int:
        """Cores the engine ran on."""
        return self.processes * self.threads


@dataclass(frozen=True)
class Settings:
    """What one benchmark run measures."""

    replicas: int = 128
    steps: int = 50
    mace_steps: int = 10
    ase_steps: int = 100
    processes: int = 2
    process_steps: int = 300
    rounds: int = 2
    compile: bool = False
    compile_cache: Path | None = None


def start_frames(molecule: str, replicas: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(positions (B, N, 3) Å, species (N,)): the molecule's built-in geometry, 0.05 Å noise each."""
    if molecule == "ethanol":
        from ase.build import molecule as ase_molecule

        atoms = ase_molecule("CH3CH2OH")
        species = torch.tensor(atoms.get_atomic_numbers(), dtype=torch.long)
        geometry = torch.tensor(atoms.get_positions())
    else:
        found = builtin_geometry(molecule)
        if found is None:
            raise SystemExit(f"bench_anchors: no built-in geometry for {molecule!r}; use ethanol or aspirin")
        species, geometry = torch.as_tensor(found[0]), torch.as_tensor(found[1])
    gen = torch.Generator().manual_seed(0)
    noise = NOISE_A * torch.randn((replicas, *geometry.shape), generator=gen, dtype=torch.float64)
    return (geometry + noise).to(dtype), species


def torchsim_rate(model: torch.nn.Module, pos: torch.Tensor, species: torch.Tensor, steps: int) -> float:
    """Replica-steps per second of torch-sim's ``nvt_langevin`` over the B replicas ``pos``."""
    import torch_sim as ts
    from torch_sim.units import MetalUnits

    from crmse_cli.model.torchsim_model import replica_state

    dtype = pos.dtype
    fs = MetalUnits.time / 1000.0  # torch-sim's time unit per fs (MetalUnits.time: per ps)
    init, update = ts.nvt_langevin(
        model,
        dt=torch.tensor(TIMESTEP_FS * fs, dtype=dtype),
        kT=torch.tensor(TEMPERATURE_K * MetalUnits.temperature, dtype=dtype),
        gamma=torch.tensor(FRICTION_PER_FS / fs, dtype=dtype),
        seed=0,
    )
    state = init(replica_state(pos, species, masses_from_species(species)))
    for _ in range(3):  # warm-up, as for crmse's sampler
        state = update(state)
    t0 = time.perf_counter()
    for _ in range(steps):
        state = update(state)
    elapsed = time.perf_counter() - t0
    if not torch.isfinite(state.positions).all():
        raise SystemExit("bench_anchors: non-finite positions under torch-sim; the benchmark is invalid")
    return int(pos.shape[0]) * steps / elapsed


def with_threads(threads: int, fn: Callable[[], float]) -> float:
    """``fn()`` with torch on ``threads`` intra-op threads (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


Measure = tuple[Row, Callable[[], float]]


def torchsim_class() -> tuple[type | None, str]:
    """The torch-sim ModelInterface class of crmse, or None and why (torch-sim not installed)."""
    try:
        from crmse_cli.model.torchsim_model import TorchSimModel
    except CrmseError as exc:
        return None, str(exc)
    return TorchSimModel, ""


def plan(molecule: str, label: str, potential: Potential, s: Settings, *, processes: bool) -> list[Measure]:
    """The rows of one molecule and model, each with the call that measures one round of it."""
    pos, species = start_frames(molecule, s.replicas, potential.dtype)
    b, p = s.replicas, s.processes
    steps = s.mace_steps if label == "mace" else s.steps
    compiled = s.compile and label != "mace"  # MACE's neighbour list does not compile: eager only

    def row(engine: str, n: int, threads: int, replicas: int = b) -> Row:
        return Row(molecule, label, engine, n, threads, replicas)

    out: list[Measure] = [
        (row("ASE Langevin (1 mol)", 1, 1, 1), lambda: ase_rate(potential, pos, species, s.ase_steps))
    ]
    model_class, why = torchsim_class()
    if model_class is None:
        skipped = row("torch-sim nvt_langevin", 1, 1)
        skipped.note = f"skipped: {why}"
        out.append((skipped, _none))
    else:
        ts_model = model_class(potential)
        run_ts = lambda: torchsim_rate(ts_model, pos, species, steps)  # noqa: E731
        out.append((row("torch-sim nvt_langevin", 1, 1), run_ts))
        if p > 1:
            out.append((row("torch-sim nvt_langevin", 1, p), lambda: with_threads(p, run_ts)))
        if compiled:
            fast = model_class(potential, compiled=True, cache_dir=s.compile_cache)
            out.append(
                (row("torch-sim, compiled forces", 1, 1), lambda: torchsim_rate(fast, pos, species, steps))
            )
        if label == "mace":
            out.append((row("torch-sim MaceModel", 1, 1), _mace_model_rate(potential, pos, species, steps)))
    out.append((row("crmse BAOAB eager", 1, 1), lambda: crmse_rate(potential, pos, species, b, steps)[0]))
    if compiled:
        out.append(
            (
                row("crmse BAOAB compiled", 1, 1),
                lambda: crmse_rate(potential, pos, species, b, steps, True)[0],
            )
        )
    if processes:
        args = argparse.Namespace(replicas=b, process_steps=s.process_steps)
        cache = s.compile_cache or Path(tempfile.gettempdir()) / "crmse-bench-compile"
        for path in (None, cache) if compiled else (None,):
            engine = "crmse sample " + ("eager" if path is None else "compiled")
            for n in sorted({1, p}):
                call = partial(process_rate, potential, pos, species, args, n, compile_cache=path)
                out.append((row(engine, n, 1), call))
    return out


def _none() -> float:
    return float("nan")


def _mace_model_rate(
    potential: Potential, pos: torch.Tensor, species: torch.Tensor, steps: int
) -> Callable[[], float]:
    """torch-sim's own MaceModel over the same mace-torch weights as ``potential``."""
    from torch_sim.models.mace import MaceModel

    # ModulePotential -> MACEEnergy -> the mace-torch model
    raw = potential.module.model  # type: ignore[attr-defined]
    model = MaceModel(model=raw, device=torch.device("cpu"), dtype=potential.dtype, compute_stress=False)
    return lambda: torchsim_rate(model, pos, species, steps)


def measure(
    molecules: list[str], potentials: dict[str, Potential], s: Settings, *, processes: bool = True
) -> list[Row]:
    """Every row of every molecule and model: ``s.rounds`` interleaved rounds of each.

    ``processes``: also ``crmse sample``'s worker processes (never for MACE).
    """
    measures: list[Measure] = []
    for molecule in molecules:
        for label, potential in potentials.items():
            measures += plan(molecule, label, potential, s, processes=processes and label != "mace")
    for _ in range(s.rounds):
        for row, call in measures:
            if not row.note:
                row.rates.append(call())
                print(
                    f"  {row.molecule} {row.model} {row.engine} {row.processes}x{row.threads}: "
                    f"{row.rates[-1]:.1f}",
                    file=sys.stderr,
                    flush=True,
                )
    return [row for row, _ in measures]


def table(rows: list[Row]) -> str:
    """Rows with their rate against ASE's and against torch-sim's eager rate on the same cores."""
    head = (
        f"{'molecule':9} {'model':6} {'engine':28} {'procs x thr':>11} {'replicas':>8} "
        f"{'replica-steps/s':>15} {'vs ASE':>7} {'vs torch-sim':>12}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.note:
            lines.append(f"{r.molecule:9} {r.model:6} {r.engine:28} {r.note}")
            continue
        ase = _find(rows, r, "ASE Langevin (1 mol)", 1)
        ts = _find(rows, r, "torch-sim nvt_langevin", r.cores)
        vs_ase = f"{r.rate / ase:7.2f}" if ase else f"{'':7}"
        vs_ts = f"{r.rate / ts:12.2f}" if ts else f"{'':12}"
        lines.append(
            f"{r.molecule:9} {r.model:6} {r.engine:28} {f'{r.processes} x {r.threads}':>11} {r.replicas:>8} "
            f"{r.rate:15.1f} {vs_ase} {vs_ts}"
        )
    lines.append(
        "vs torch-sim: against torch-sim's nvt_langevin (eager forces) on as many cores "
        "(procs x threads), same molecule and weights"
    )
    return "\n".join(lines)


def _find(rows: list[Row], like: Row, engine: str, cores: int) -> float | None:
    for r in rows:
        if (r.molecule, r.model, r.engine, r.cores) == (like.molecule, like.model, engine, cores) and r.rates:
            return r.rate
    return None


def machine_line(when: str) -> str:
    """CPUs, this process's affinity, torch's threads and the 1/5/15-minute load average."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{when}: {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), torch threads "
        f"{torch.get_num_threads()}, load average {load}"
    )


def potentials(args: argparse.Namespace, molecules: list[str]) -> dict[str, Potential]:
    """The PaiNN (fresh or ``--checkpoint``) and, with mace-torch, a fresh MACE."""
    species = sorted({int(z) for m in molecules for z in start_frames(m, 1, torch.float64)[1].tolist()})
    torch.manual_seed(0)
    if args.checkpoint is not None:
        pot, _ = load_checkpoint(args.checkpoint, trust_code=args.trust_code)
        out = {pot.config.architecture: pot}
    else:
        out = {"painn": build_potential(ModelConfig(), species)}
    if not args.no_mace:
        try:
            torch.manual_seed(0)
            out["mace"] = build_potential(ModelConfig(architecture="mace", **MACE_DEFAULTS), species)  # type: ignore[arg-type]
        except CrmseError as exc:
            print(f"bench_anchors: MACE rows skipped: {exc}")
    return {k: v.eval() for k, v in out.items()}


def main() -> None:
    """Parse the options, measure every row, print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK} (about 2 minutes)")
    parser.add_argument("--replicas", type=int, default=128, help="B of the batched engines")
    parser.add_argument("--steps", type=int, default=50, help="timed steps of the in-process batched engines")
    parser.add_argument("--mace-steps", type=int, default=10, help="timed steps of the MACE batched rows")
    parser.add_argument("--ase-steps", type=int, default=100, help="timed ASE steps")
    parser.add_argument("--processes", type=int, default=2, help="P: crmse sample on 1 and P processes")
    parser.add_argument(
        "--process-steps", type=int, default=300, help="steps of each crmse sample run (>= 200)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best is reported")
    parser.add_argument("--molecules", nargs="+", default=["ethanol", "aspirin"])
    parser.add_argument("--compile", action="store_true", help="also the compiled force path")
    parser.add_argument("--compile-cache", type=Path, help="inductor's cache folder")
    parser.add_argument("--checkpoint", type=Path, help="a crmse checkpoint instead of a fresh PaiNN")
    parser.add_argument("--trust-code", action="store_true", help="the checkpoint may run its stored code")
    parser.add_argument("--no-mace", action="store_true", help="skip the MACE rows")
    args = parser.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    torch.set_num_threads(1)
    tune_allocator()
    print(machine_line("start"), flush=True)
    pots = potentials(args, args.molecules)
    settings = Settings(
        replicas=args.replicas,
        steps=args.steps,
        mace_steps=args.mace_steps,
        ase_steps=args.ase_steps,
        processes=args.processes,
        process_steps=args.process_steps,
        rounds=args.rounds,
        compile=args.compile,
        compile_cache=args.compile_cache,
    )
    t0 = time.perf_counter()
    rows = measure(args.molecules, pots, settings)
    models = ", ".join(f"{k} {v.config.features}x{v.config.layers} {v.config.dtype}" for k, v in pots.items())
    print(
        f"bench_anchors: torch {torch.__version__}; {models}; dt {TIMESTEP_FS} fs, {TEMPERATURE_K:g} K, "
        f"gamma {FRICTION_PER_FS}/fs; wall clock, best of {settings.rounds} round(s)"
        + ("; QUICK: smoke-test settings, not figures to quote" if args.quick else "")
    )
    print(table(rows))
    print(machine_line("end") + f"; measured in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
