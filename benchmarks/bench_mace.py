"""A small MACE against crmse's PaiNN on the same batch: sampler throughput and one CRMSE update.

Both models untrained (cost does not depend on the weights' values), same dtype, one thread:
- replica-steps per second of energy + forces (the Langevin / ULA hot path) for B = 64 ethanol
  replicas (rMD17 frames from ../shared/data when present, else a synthetic cloud);
- wall time of one CRMSE update (K ULA steps for C = 64 chains + one parameter update on a
  batch of 32 frames), measured at ``--steps-per-update`` and extrapolated to K = 200 (the
  default) from the measured split between sampling and the parameter update.

MACE: mace-torch's ScaleShiftMACE at crmse's ``--architecture mace`` defaults (hidden irreps
64x0e, 2 interactions, 8 Bessel functions, r_max 5 Å, L_max 3, correlation 3). PaiNN: crmse's
default ModelConfig (F = 64, 3 layers, 20 radial functions, 5 Å).

Usage: python benchmarks/bench_mace.py [--threads 1] [--dtype float32] [--steps-per-update 5]
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

from bench_model import load_molecule, rate  # noqa: E402

from crmse_cli.model import ModelConfig, build_potential, force_field, make_graph  # noqa: E402
from crmse_cli.model.config import MACE_DEFAULTS  # noqa: E402
from crmse_cli.sampling.ula import ula_steps  # noqa: E402
from crmse_cli.train.contrastive import ContrastiveConfig, ContrastiveTrainer  # noqa: E402

REPLICAS = 64
CHAINS = 64


def crmse_update(pot: torch.nn.Module, data: tuple, k: int) -> tuple[float, float]:
    """(seconds per update, of which sampling) at K = ``k``, C = 64 chains, batch 32."""
    pos, species, energies, forces = data

    def energy_fn(p: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = pot(make_graph(p, species))
        return out

    cfg = ContrastiveConfig(n_chains=CHAINS, steps_per_update=k, n_updates=3, batch_size=32, seed=0)
    trainer = ContrastiveTrainer(energy_fn, list(pot.parameters()), pos, energies, forces, cfg)
    trainer.step()  # warm-up
    t0 = time.perf_counter()
    trainer.step()
    per_update = time.perf_counter() - t0
    g = torch.Generator().manual_seed(1)
    t0 = time.perf_counter()
    ula_steps(
        trainer._force_fn, trainer.chains, k, eta_A2=cfg.eta_A2, temperature_K=cfg.temperature_K, generator=g
    )
    return per_update, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--steps-per-update", type=int, default=5, help="K of the timed update (default 5)")
    parser.add_argument("--seconds", type=float, default=2.0, help="timing window per rate (default 2 s)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pos, species, energies, forces, source = load_molecule("ethanol", 200)
    dtype = getattr(torch, args.dtype)
    data = (pos.to(dtype), species, energies.to(dtype), forces.to(dtype))
    models = {
        "PaiNN (crmse default)": ModelConfig(dtype=args.dtype),
        "MACE 64x0e, 2 layers": ModelConfig(
            architecture="mace", dtype=args.dtype, **MACE_DEFAULTS  # type: ignore[arg-type]
        ),
    }
    print(f"ethanol ({source}), {args.dtype}, {args.threads} thread(s), B = {REPLICAS}, C = {CHAINS}")
    k_label = f"update K={args.steps_per_update}"
    print(f"{'model':24s} {'params':>8s} {'replica-steps/s':>16s} {k_label:>14s} {'update K=200':>13s}")
    for label, config in models.items():
        torch.manual_seed(0)
        pot = build_potential(config, species.tolist())
        pot.fit_shift_scale(species.numpy(), energies.numpy(), forces.numpy())
        fn = force_field(pot, species)
        batch = data[0][:REPLICAS]
        steps_per_s = rate(lambda fn=fn, batch=batch: fn(batch), REPLICAS, args.seconds)
        per_update, sampling = crmse_update(pot, data, args.steps_per_update)
        k200 = (per_update - sampling) + sampling * 200 / args.steps_per_update
        n_params = sum(p.numel() for p in pot.parameters())
        print(f"{label:24s} {n_params:8d} {steps_per_s:16.0f} {per_update:13.2f}s {k200:12.1f}s")


if __name__ == "__main__":
    main()
