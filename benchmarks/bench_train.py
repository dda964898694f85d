"""Training throughput of MSE pretraining on the CPU: frames per second of the real epoch loop.

For ethanol (9 atoms) and aspirin (21 atoms), runs ``PretrainTrainer`` epochs (Adam, energy +
force loss with ``create_graph=True``, gradient clipping, validation) on rMD17 train_01 frames
and prints frames/s, seconds per epoch and the time 1000 frames x E epochs would take.
Without ../shared data it trains on random geometries of the right composition (same cost).

Usage: python benchmarks/bench_train.py [--threads 1] [--features 64] [--layers 3] [--epochs 3]
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

from crmse_cli.data.dataset import Dataset  # noqa: E402
from crmse_cli.model import ModelConfig  # noqa: E402
from crmse_cli.model.allocator import tune_allocator  # noqa: E402
from crmse_cli.train.pretrain import PretrainConfig, PretrainTrainer  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "rmd17" / "andersx-rmd17-npz"
COMPOSITION = {"ethanol": [6, 6, 8, 1, 1, 1, 1, 1, 1], "aspirin": [6] * 9 + [8] * 4 + [1] * 8}


def molecule(name: str, n_frames: int) -> tuple[Dataset, str]:
    """A dataset of ``n_frames`` rMD17 frames (split "01" = all of them for training)."""
    path = DATA / f"rmd17_{name}_train_01.npz"
    if path.exists():
        with np.load(path) as z:
            species, pos = z["nuclear_charges"].astype(np.int64), z["coords"][:n_frames]
            energies, forces, source = z["energies"][:n_frames], z["forces"][:n_frames], "rMD17"
    else:
        gen = np.random.default_rng(0)
        species = np.array(COMPOSITION[name])
        n = len(species)
        pos = gen.random((n_frames, n, 3)) * 1.2 * n ** (1 / 3)
        energies, forces, source = gen.normal(size=n_frames), gen.normal(size=(n_frames, n, 3)), "synthetic"
    frames = len(energies)
    data = Dataset(
        name=name,
        species=species,
        positions=pos,
        energies=energies,
        forces=forces,
        frame_ids=np.arange(frames),
        splits={"01": {"train": np.arange(frames)}},
    )
    return data, source


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--architecture", default="painn", choices=["painn", "schnet"])
    parser.add_argument("--features", type=int, default=ModelConfig.features)
    parser.add_argument("--layers", type=int, default=ModelConfig.layers)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--batch-size", type=int, default=PretrainConfig.batch_size)
    parser.add_argument("--frames", type=int, default=400, help="frames per epoch (+5%% validation)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")
    args = parser.parse_args()

    tuned = tune_allocator()
    torch.set_num_threads(args.threads)
    model = ModelConfig(
        architecture=args.architecture, features=args.features, layers=args.layers, dtype=args.dtype
    )
    print(
        f"crmse training benchmark: torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"{model.architecture} F={model.features} L={model.layers}, {model.dtype}, batch {args.batch_size}, "
        f"malloc tuned: {tuned}"
    )
    for name in ("ethanol", "aspirin"):
        n_total = int(round(args.frames / 0.95))
        data, source = molecule(name, n_total)
        cfg = PretrainConfig(
            model=model,
            n_train=None,  # all but the validation frames (~5%, as before)
            n_val=max(1, len(data.energies) - args.frames),
            batch_size=args.batch_size,
            max_epochs=args.epochs + 1,
            max_minutes=None,
            early_stopping_patience=0,
        )
        trainer = PretrainTrainer.create(cfg, data)
        trainer.run_epoch()  # warm-up: allocator, edge templates
        start = time.perf_counter()
        for _ in range(args.epochs):
            trainer.run_epoch()
        per_epoch = (time.perf_counter() - start) / args.epochs
        rate = len(trainer.train_set) / per_epoch
        print(
            f"\n{name} ({data.n_atoms} atoms, {source} frames): {rate:8.0f} frames/s   "
            f"{per_epoch:6.2f} s per epoch of {len(trainer.train_set)} frames "
            f"(+{len(trainer.val_set)} validation, included in the time)"
        )
        print(
            f"  950 training frames: {950 / rate:6.2f} s per epoch, {60 * rate / 950:6.1f} epochs per minute"
        )


if __name__ == "__main__":
    main()
