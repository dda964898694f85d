"""Wall time per CRMSE update (K ULA steps for C chains + one parameter update) on this machine.

Prints, for ethanol and aspirin with the default PaiNN (untrained weights: the cost of an update
does not depend on the weights' values), the seconds per update and its split into the chains'
K sampler steps and the parameter update, for C = 32, 64, 128 chains at K = 200.

The parameter update (``param s``: L_MSE's forces differentiated again with respect to the
weights, the second-order path, plus L_C) is also timed on its own. With ``--compile`` every
setting runs twice in the same process, eager then with the chains' forces compiled
(``model/compiled.py``, as ``crmse regularize --compile``), and the compiled / eager ratio of the
update is printed.

Usage: python benchmarks/bench_crmse.py [--threads 1] [--steps-per-update 200] [--updates 2]
       [--chains 64] [--molecules ethanol] [--compile [--compile-cache DIR]]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_model import load_molecule  # noqa: E402

from crmse_cli.model import ModelConfig, build_potential, make_graph  # noqa: E402
from crmse_cli.model.forces import force_field  # noqa: E402
from crmse_cli.sampling.ula import ula_steps  # noqa: E402
from crmse_cli.train.contrastive import ContrastiveConfig, ContrastiveTrainer  # noqa: E402


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK_HELP = (
    "wall (default) or cpu: this process's CPU seconds, which on a machine loaded by other jobs "
    "approximate a quiet core's wall seconds (one thread; contention still inflates them a little)"
)
CLOCK = [time.perf_counter]  # the in-process timers' clock (--clock)


def bench(
    molecule: str, chains: int, k: int, updates: int, compiled: bool = False
) -> tuple[float, float, float]:
    pos, species, energies, forces, source = load_molecule(molecule, 200)
    pot = build_potential(ModelConfig(), species.tolist())
    pot.fit_shift_scale(species, energies, forces)
    dtype = pot.dtype
    x, e, f = pos.to(dtype), energies.to(dtype), forces.to(dtype)

    def energy_fn(p: torch.Tensor) -> torch.Tensor:
        return pot(make_graph(p, species))

    cfg = ContrastiveConfig(n_chains=chains, steps_per_update=k, n_updates=updates, seed=0)
    chain_forces = force_field(pot, species, compiled=True) if compiled else None
    trainer = ContrastiveTrainer(energy_fn, list(pot.parameters()), x, e, f, cfg, chain_force_fn=chain_forces)
    trainer.step()  # warm-up (allocator, first-call overheads)
    t0 = CLOCK[0]()
    for _ in range(updates):
        trainer.step()
    per_update = (CLOCK[0]() - t0) / updates
    g = torch.Generator().manual_seed(1)
    t0 = CLOCK[0]()
    ula_steps(
        trainer._force_fn, trainer.chains, k, eta_A2=cfg.eta_A2, temperature_K=cfg.temperature_K, generator=g
    )
    sampling = CLOCK[0]() - t0
    idx = trainer._draw_index(trainer.batch_size)
    t0 = CLOCK[0]()
    for _ in range(updates):
        trainer.gradient_step(idx)
    param = (CLOCK[0]() - t0) / updates
    return per_update, sampling, param


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--steps-per-update", type=int, default=200, help="K (default 200)")
    parser.add_argument("--updates", type=int, default=2, help="timed updates per setting")
    parser.add_argument("--chains", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--molecules", nargs="+", default=["ethanol", "aspirin"])
    parser.add_argument("--clock", choices=CLOCKS, default="wall", help=CLOCK_HELP)
    parser.add_argument("--compile", action="store_true", help="also time the compiled chain forces")
    parser.add_argument("--compile-cache", type=Path, help="inductor's cache folder (default: its own)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    CLOCK[0] = CLOCKS[args.clock]
    if args.compile_cache is not None:
        from crmse_cli.model.compiled import use_cache_dir

        use_cache_dir(args.compile_cache)
    print(
        f"CRMSE update {args.clock} time, K = {args.steps_per_update}, threads = {args.threads}, "
        f"torch {torch.__version__}, default PaiNN ({ModelConfig().features} features, {ModelConfig().layers} layers)"
    )
    print(
        f"{'molecule':<10}{'chains':>8}{'forces':>10}{'s/update':>12}{'sampling s':>12}{'param s':>10}"
        f"{'replica-steps/s':>18}"
    )
    for mol in args.molecules:
        for c in args.chains:
            eager_s = 0.0
            for compiled in (False, True) if args.compile else (False,):
                per_update, sampling, param = bench(mol, c, args.steps_per_update, args.updates, compiled)
                rate = c * args.steps_per_update / sampling
                label = "compiled" if compiled else "eager"
                ratio = f"  (eager/compiled {eager_s / per_update:.2f}x)" if compiled else ""
                eager_s = per_update
                print(
                    f"{mol:<10}{c:>8}{label:>10}{per_update:>12.2f}{sampling:>12.2f}{param:>10.2f}{rate:>18.0f}{ratio}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
