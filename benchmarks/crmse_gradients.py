"""How large is the contrastive gradient next to the MSE gradient? (Why lambda = 0.015 does little.)

For each regularize run given, and for each saved chain set (the ``chains_*.npz`` artifacts),
this loads the run's final weights (or, with ``--initial``, the weights it started from), draws
``--batches`` batches of the run's own training frames (its batch size) and measures per batch:

* g_MSE   = d L_MSE / d theta          (the energy + force loss with the run's weights w_E, w_F)
* g_C     = lambda * d L_C / d theta,   L_C = beta * (mean U(data batch) - mean U(chains))

and prints the norms, their ratio, the cosine between them, and the figure Adam sees: the median
over parameters of |mean g_C| / rms(g_MSE), i.e. the contrastive drift in units of the per-parameter
step size Adam normalises by (its second moment is dominated by the MSE gradient's batch noise).

Usage: CRMSE_HOME=... python benchmarks/crmse_gradients.py RUN [RUN ...] [--batches 16] [--initial]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crmse_cli.model.graph import make_graph  # noqa: E402
from crmse_cli.errors import CrmseError  # noqa: E402
from crmse_cli.registry.store import Registry  # noqa: E402
from crmse_cli.stages._models import load_dataset, resolve_model  # noqa: E402
from crmse_cli.stages.regularize import _frames, _loss_weights  # noqa: E402
from crmse_cli.train.losses import LossWeights, energy_force_loss  # noqa: E402
from crmse_cli.units import beta as beta_of  # noqa: E402
from crmse_cli.workspace import Workspace  # noqa: E402


def flat_grad(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--initial", action="store_true", help="use the weights the run started from")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    reg = Registry.open(Workspace.resolve(None))
    print(
        "| run | weights | chains (update) | lambda | T (K) | norm g_MSE | norm g_C | ratio | cosine |"
        " Adam view: median mean(g_C)/rms(g_MSE) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for ref in args.runs:
        run = reg.get_run(ref)
        if run.kind != "regularize":
            raise CrmseError(f"{ref} is a {run.kind} run; give regularize runs (they have chains)")
        cc = run.config.get("contrastive", {})
        lam = float(cc.get("lambda_", 0.015)) or 0.015  # the lambda = 0 control: measure at 0.015
        temp = float(cc.get("temperature_K", 500.0))
        batch = int(cc.get("batch_size", 32))
        weights_ref = run.parent if args.initial and run.parent else run.id
        handle = resolve_model(reg, weights_ref)
        pot = handle.potential
        params = [p for p in pot.parameters() if p.requires_grad]
        data = load_dataset(reg, handle.dataset)
        train_rows, _ = _frames(handle, data)
        lw = _loss_weights(handle)  # the pretrain run's w_E, w_F (LossWeights' defaults otherwise)
        weights = LossWeights(
            energy=lw.get("energy_weight", LossWeights.energy), forces=lw.get("force_weight", LossWeights.forces)
        )
        dt = pot.dtype
        sp = torch.as_tensor(data.species)
        beta = beta_of(temp)

        def energy_fn(x: torch.Tensor) -> torch.Tensor:
            return pot(make_graph(x, sp))

        arts = sorted(
            (a for a in reg.artifacts(run.id) if a.kind == "chains"), key=lambda a: int(a.meta.get("update", 0))
        )
        rng = np.random.default_rng(args.seed)
        for art in arts:
            chains = torch.as_tensor(np.load(art.path)["positions"], dtype=dt)
            gm, gc = [], []
            for _ in range(args.batches):
                rows = train_rows[rng.choice(len(train_rows), size=batch, replace=False)]
                x = torch.as_tensor(data.positions[rows], dtype=dt)
                e_ref = torch.as_tensor(data.energies[rows], dtype=torch.float64)
                f_ref = torch.as_tensor(data.forces[rows], dtype=dt)
                loss_mse, _ = energy_force_loss(energy_fn, x, None, e_ref, f_ref, weights)
                gm.append(flat_grad(loss_mse, params))
                loss_c = beta * (energy_fn(x).mean() - energy_fn(chains).mean())
                gc.append(lam * flat_grad(loss_c, params))
            gm_t, gc_t = torch.stack(gm).double(), torch.stack(gc).double()
            nm = gm_t.norm(dim=1).mean().item()
            nc = gc_t.norm(dim=1).mean().item()
            cos = torch.nn.functional.cosine_similarity(gm_t, gc_t, dim=1).mean().item()
            rms = gm_t.pow(2).mean(0).sqrt()
            ok = rms > 0
            adam = (gc_t.mean(0).abs()[ok] / rms[ok]).median().item()
            label = "initial" if args.initial else "final"
            print(
                f"| {run.name or run.id} | {label} | {art.meta.get('update')} | {lam:g} | {temp:g} | "
                f"{nm:.3g} | {nc:.3g} | {nc / nm:.3g} | {cos:+.2f} | {adam:.3g} |"
            )


if __name__ == "__main__":
    try:
        main()
    except CrmseError as exc:  # an unknown run, a missing dataset: one line, exit 1
        sys.exit(f"error: {exc}")
