"""CRMSE updates per second with 1 and 2 data-parallel processes (torchrun, gloo, one thread each).

Usage: CRMSE_HOME=... python benchmarks/bench_ddp.py MODEL_RUN [--chains 32] [--steps 200] [--updates 4]

Each row runs ``torchrun --standalone --nproc-per-node N -m crmse_cli regularize --from MODEL_RUN``
twice, with 1 and with 1 + UPDATES updates, and reports the difference of the two wall times per
update (start-up, data loading and the final test evaluation cancel). Chains and the batch are
split over the processes, so the work per update is the same in every row. The figure to read is
the ratio measured side by side in one run; say what else loaded the machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from crmse_cli.train.distributed import torchrun_command


def _run(model: str, n: int, updates: int, chains: int, steps: int, tag: str) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1", CRMSE_NO_PROGRESS="1")
    cmd = torchrun_command(
        n,
        "--threads",
        "1",
        "regularize",
        "--from",
        model,
        "--updates",
        str(updates),
        "--chains",
        str(chains),
        "--steps-per-update",
        str(steps),
        "--name",
        tag,
    )
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{out.stdout[-1500:]}{out.stderr[-1500:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--chains", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--updates", type=int, default=4)
    args = ap.parse_args()
    stamp = time.strftime("%H%M%S")
    rows = []
    for n in (1, 2):
        short = _run(args.model, n, 1, args.chains, args.steps, f"bench-ddp-{stamp}-{n}-a")
        long = _run(args.model, n, 1 + args.updates, args.chains, args.steps, f"bench-ddp-{stamp}-{n}-b")
        rows.append((n, (long - short) / args.updates))
    base = rows[0][1]
    print(f"| processes | s / update (C = {args.chains}, K = {args.steps}) | updates / s | speed-up |")
    print("|---|---|---|---|")
    for n, s in rows:
        print(f"| {n} | {s:.2f} | {1 / s:.3f} | {base / s:.2f} |")


if __name__ == "__main__":
    main()
