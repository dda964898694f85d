"""How well does the force budget's validation set resolve a +10% budget? Paired errors, bootstrapped.

For each (parent, model) pair: the relative change of force MAE, model against parent, on three
frame sets of the parent's split, with a paired bootstrap over frames (the standard error of the
relative change, 2000 resamples):

- ``val``: the parent's validation frames (what `--force-budget` scores candidates on);
- ``held``: every other training-split frame the parent neither trained nor validated on
  (a larger validation set a user of rMD17 would have: 700 frames at 200 + 100);
- ``test``: the split's test frames (what the study reports).

Per-frame force MAE is the mean |dF| over the frame's 3N components (kcal/mol/Å); the relative
change is sum(model) / sum(parent) - 1 over the (resampled) frames, the same quantity as the
reported MAE ratio.

Usage: CRMSE_HOME=... python benchmarks/val_noise.py PARENT:MODEL [PARENT:MODEL ...] [--markdown]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crmse_cli.model.forces import energy_and_forces  # noqa: E402
from crmse_cli.registry.store import Registry  # noqa: E402
from crmse_cli.stages._models import load_dataset, resolve_model  # noqa: E402
from crmse_cli.workspace import Workspace  # noqa: E402


def frame_force_mae(
    potential: torch.nn.Module, data: object, rows: np.ndarray, batch: int = 100
) -> np.ndarray:
    """(len(rows),) mean |F_model - F_ref| per frame, kcal/mol/Å."""
    dtype = next(potential.parameters()).dtype
    species = torch.as_tensor(data.species)  # type: ignore[attr-defined]
    out = []
    for i in range(0, len(rows), batch):
        r = rows[i : i + batch]
        x = torch.as_tensor(data.positions[r], dtype=dtype)  # type: ignore[attr-defined]
        ref = torch.as_tensor(data.forces[r], dtype=torch.float64)  # type: ignore[attr-defined]
        _, f = energy_and_forces(potential, x, species, create_graph=False)
        out.append((f.double() - ref).abs().mean(dim=(1, 2)).detach().numpy())
    return np.concatenate(out)


def paired(
    parent: np.ndarray, model: np.ndarray, rng: np.random.Generator, n_boot: int = 2000
) -> tuple[float, float]:
    """(relative change of the mean, its bootstrap standard error)."""
    delta = model.sum() / parent.sum() - 1.0
    idx = rng.integers(0, len(parent), size=(n_boot, len(parent)))
    boot = model[idx].sum(axis=1) / parent[idx].sum(axis=1) - 1.0
    return float(delta), float(boot.std(ddof=1))


def main() -> None:
    """Print one markdown row per pair."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("pairs", nargs="+", help="PARENT:MODEL run names or ids")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    reg = Registry.open(Workspace.resolve(None))
    rng = np.random.default_rng(args.seed)
    print("| parent | model | val frames | Δ force MAE, val | held frames | Δ, held | test frames | Δ, test |")  # noqa: E501
    print("|---|---|---|---|---|---|---|---|")
    for pair in args.pairs:
        p_ref, m_ref = pair.split(":")
        parent, model = resolve_model(reg, p_ref), resolve_model(reg, m_ref)
        data = load_dataset(reg, parent.dataset)
        extra = parent.payload.get("extra", {})
        train_idx = np.asarray(extra["train_indices"], dtype=np.int64)
        val_idx = np.asarray(extra["val_indices"], dtype=np.int64)
        split_train, test_idx = data.split(parent.split)
        held = np.setdiff1d(np.asarray(split_train), np.concatenate([train_idx, val_idx]))
        cells = []
        for rows in (val_idx, held, np.asarray(test_idx)):
            a = frame_force_mae(parent.potential.eval(), data, rows)
            b = frame_force_mae(model.potential.eval(), data, rows)
            d, se = paired(a, b, rng)
            cells += [str(len(rows)), f"{100 * d:+.1f}% ± {100 * se:.1f}%"]
        print(f"| {p_ref} | {m_ref} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
