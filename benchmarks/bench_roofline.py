"""The sampler's force path against the roofline: FLOPs, achieved GFLOP/s, share of the matmul peak.

For ethanol (9 atoms) and aspirin (21 atoms), B = 128 replicas, PaiNN 64x3 float32 (random
weights; the cost does not depend on them), the sampler's call ``force_field(potential,
species)(positions)`` (energy + forces by autograd, ``create_graph=False``):

1. FLOPs of one call, counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls: mm,
   addmm, bmm; forward and backward), cross-checked against a hand count of the matmuls, plus
   the elements written and bytes moved by every other (elementwise, reduction, copy) op, counted
   by a dispatch mode: that is the memory-bound part the FLOP counter does not see.
2. Time per call, the one-core fp32 matmul peak (2048 x 2048 x 2048) and the copy bandwidth
   (128 MiB), measured interleaved (peak, copy, force path, peak, ...) so all see the same load;
   figures are the best of ``--repeats`` (min time) and the median. The roofline line adds the
   matmuls' time at the peak to the other ops' bytes at the copy bandwidth: the best this
   sequence of eager ops could do.
3. With ``--profile``: torch profiler self-time of the top ops and their share by kind (matmul,
   elementwise, reduction, copy/cat, other), and the part of the wall time outside any op.

``--baseline REV`` times the ``crmse_cli`` of git revision REV (see ``baseline.py``) side by
side with the working tree, same weights, interleaved (A, B, A, B, ...).

Usage: python benchmarks/bench_roofline.py [--threads 1] [--replicas 128] [--repeats 7]
       [--baseline main] [--profile] [--molecules ethanol aspirin]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_model import load_molecule  # noqa: E402

from crmse_cli.model import ModelConfig, build_potential, force_field  # noqa: E402
from crmse_cli.model.allocator import tune_allocator  # noqa: E402

PEAK_SIZE = 2048
MATMULS = {"mm", "addmm", "bmm", "baddbmm", "matmul", "linear"}
# Ops that only re-describe memory (no bytes moved, no arithmetic).
VIEWS = {
    "view", "_unsafe_view", "as_strided", "t", "transpose", "unsqueeze", "squeeze", "expand",
    "split", "split_with_sizes", "select", "slice", "detach", "alias", "permute", "unbind",
    "_reshape_alias", "reshape", "lift_fresh", "empty", "empty_like", "new_empty_strided",
}  # fmt: skip
KINDS = {
    "matmul": MATMULS,
    "reduction": {"sum", "mean"},
    "copy/cat": {"cat", "copy_", "clone", "contiguous", "stack", "index_select", "fill_", "zero_", "zeros"},
}


class MemoryCounter(TorchDispatchMode):
    """Elements written and bytes read + written by every non-matmul, non-view aten op."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: dict[str, int] = defaultdict(int)
        self.bytes: dict[str, int] = defaultdict(int)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name in MATMULS or name in VIEWS:
            return out
        tensors_in = [
            a for a in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)
        ]
        tensors_out = [a for a in torch.utils._pytree.tree_leaves(out) if isinstance(a, torch.Tensor)]
        self.elements[name] += sum(t.numel() for t in tensors_out)
        self.bytes[name] += sum(t.numel() * t.element_size() for t in tensors_in + tensors_out)
        return out


def hand_count(n_structures: int, n_atoms: int, config: ModelConfig, skip_unused: bool) -> dict[str, float]:
    """FLOPs of PaiNN's matmuls in one energy + forces call (dense layout, N^2 pairs per structure).

    Forward: the filters (pairs x (n_rbf + 1) x F, 3 per layer), the message MLP (F -> F -> 3F),
    the channel mix (3 components, F -> 2F), the update MLP (2F -> F -> 3F), the direction bmm
    (3 x N x F per receiver) and the readout (F -> F/2 -> 1). Backward to the positions: one
    input-gradient matmul of the same size for each, no weight gradients, none for the first
    layer's message MLP (its input is the embedding, broadcast over replicas) and none for the
    first layer's vector filter (no vector features yet). ``skip_unused``: that filter's forward
    matmul is skipped too (the working tree since issue 18; the reference computed it).
    """
    b, n, nf, k, n_layers = n_structures, n_atoms, config.features, config.n_rbf + 1, config.layers
    pairs, atoms = b * n * n, b * n
    one_filter = 2 * pairs * k * nf
    message = 2 * atoms * (nf * nf + nf * 3 * nf) * n_layers
    mix = 2 * 3 * atoms * nf * 2 * nf * n_layers
    update = 2 * atoms * (2 * nf * nf + nf * 3 * nf) * n_layers
    direction = 2 * pairs * 3 * nf * n_layers
    readout = 2 * atoms * (nf * (nf // 2) + nf // 2)
    first_message = 2 * n * (nf * nf + nf * 3 * nf)  # layer 1 runs on (1, N, F)
    filters_fwd = one_filter * (3 * n_layers - (1 if skip_unused else 0))
    filters_bwd = one_filter * (3 * n_layers - 1)
    atom_fwd = message - first_message * (b - 1) + mix + update + readout
    atom_bwd = message - first_message * b + mix + update + readout
    # The direction bmm needs both operands' gradients (unit vectors and filtered features).
    return {
        "filters": filters_fwd + filters_bwd,
        "atom MLPs + mix": atom_fwd + atom_bwd,
        "direction bmm": 3 * direction,
        "total": filters_fwd + filters_bwd + atom_fwd + atom_bwd + 3 * direction,
    }


def count(fn: Callable[[], Any]) -> tuple[dict[str, int], MemoryCounter]:
    """Matmul FLOPs by op (FlopCounterMode) and the memory counter of one call."""
    with FlopCounterMode(display=False) as flops:
        fn()
    memory = MemoryCounter()
    with memory:
        fn()
    return {str(op): int(v) for op, v in flops.get_flop_counts()["Global"].items()}, memory


def peak_matmul() -> tuple[Callable[[], None], float]:
    """A (2048 x 2048) @ (2048 x 2048) fp32 matmul and its FLOPs."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(PEAK_SIZE, PEAK_SIZE, generator=gen)
    b = torch.randn(PEAK_SIZE, PEAK_SIZE, generator=gen)
    out = torch.empty(PEAK_SIZE, PEAK_SIZE)

    def run() -> None:
        torch.mm(a, b, out=out)

    return run, 2.0 * PEAK_SIZE**3


def stream_copy() -> tuple[Callable[[], None], float]:
    """A 128 MiB fp32 copy (far beyond the caches) and the bytes it moves (read + write)."""
    n = 32 * 2**20
    src, dst = torch.ones(n), torch.empty(n)

    def run() -> None:
        dst.copy_(src)

    return run, 2.0 * n * 4


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, calls: int) -> dict[str, list[float]]:
    """Seconds per call of each function, measured round-robin ``repeats`` times."""
    for fn in fns.values():
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls)
    return times


def profile_table(fn: Callable[[], Any], calls: int, top: int) -> None:
    """Print the top ops by self CPU time and the share of each kind of op."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    wall = (time.perf_counter() - start) / calls * 1e6
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events) / calls
    by_kind: dict[str, float] = defaultdict(float)
    for e in events:
        op = e.key.removeprefix("aten::")
        kind = next(
            (k for k, ops in KINDS.items() if op in ops), "elementwise" if op not in VIEWS else "other"
        )
        by_kind[kind] += e.self_cpu_time_total / calls
    print(f"    profile ({calls} calls, per call): aten ops {total / 1e3:.1f} ms of {wall / 1e3:.1f} ms wall "
          f"({100 * total / wall:.0f}%; the rest is autograd engine, Python and profiler overhead)")  # fmt: skip
    print(
        "    by kind: "
        + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in sorted(by_kind.items(), key=lambda x: -x[1]))
    )
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        print(f"      {e.key:28} {e.self_cpu_time_total / calls / 1e3:8.2f} ms  {e.count // calls:5d} calls  "
              f"{100 * e.self_cpu_time_total / calls / total:5.1f}%")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--replicas", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds (min and median)")
    parser.add_argument("--calls", type=int, default=2, help="calls per timing")
    parser.add_argument("--molecules", nargs="+", default=["ethanol", "aspirin"])
    parser.add_argument("--baseline", default=None, help="git revision to time side by side")
    parser.add_argument("--profile", action="store_true", help="print the torch profiler's top ops")
    args = parser.parse_args()
    tune_allocator()
    torch.set_num_threads(args.threads)
    config = ModelConfig()
    print(f"bench_roofline: torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"{torch.backends.cpu.get_cpu_capability()}, PaiNN F={config.features} L={config.layers} "
          f"n_rbf={config.n_rbf} float32, B = {args.replicas}")  # fmt: skip
    base = None
    if args.baseline is not None:
        base = __import__("baseline").load_baseline(args.baseline)
        print(f"baseline: {args.baseline} imported as {base.__name__}")
    peak_fn, peak_flops = peak_matmul()
    copy_fn, copy_bytes = stream_copy()
    for name in args.molecules:
        pos, species, _, _, source = load_molecule(name, args.replicas)
        pos = pos[torch.arange(args.replicas) % pos.shape[0]].float().contiguous()
        torch.manual_seed(0)
        potential = build_potential(config, sorted(set(species.tolist())))
        variants: dict[str, Callable[[], Any]] = {}
        if base is not None:
            old = base.model.build_potential(base.model.ModelConfig(), sorted(set(species.tolist())))
            old.load_state_dict(potential.state_dict())
            old_fn = base.model.force_field(old, species)
            variants["before"] = lambda f=old_fn, x=pos: f(x)
        new_fn = force_field(potential, species)
        variants["after" if base is not None else "force path"] = lambda f=new_fn, x=pos: f(x)
        n = int(species.numel())
        print(f"\n{name}: N = {n}, {source} geometries")
        volumes = {}
        for label, fn in variants.items():
            hand = hand_count(args.replicas, n, config, skip_unused=label != "before")
            flops, memory = count(fn)
            total = sum(flops.values())
            elements, moved = sum(memory.elements.values()), sum(memory.bytes.values())
            volumes[label] = (total, moved)
            print(f"  [{label}] matmul FLOPs {total / 1e9:.3f} G (" + ", ".join(f"{k} {v / 1e9:.3f}" for k, v in flops.items())
                  + f"); hand count {hand['total'] / 1e9:.3f} G (filters {hand['filters'] / 1e9:.3f}, "
                  f"atom MLPs + mix {hand['atom MLPs + mix'] / 1e9:.3f}, direction {hand['direction bmm'] / 1e9:.3f})")  # fmt: skip
            print(f"  [{label}] other ops: {elements / 1e6:.1f} M elements written, {moved / 1e6:.0f} MB moved "
                  f"(matmul FLOPs per byte of the rest: {total / moved:.1f})")  # fmt: skip
        times = interleaved({"peak": peak_fn, "copy": copy_fn, **variants}, args.repeats, args.calls)
        best_peak = peak_flops / min(times["peak"]) / 1e9
        med_peak = peak_flops / statistics.median(times["peak"]) / 1e9
        bandwidth = copy_bytes / min(times["copy"]) / 1e9
        print(f"  matmul peak {PEAK_SIZE}^3: best {best_peak:.1f} GFLOP/s, median {med_peak:.1f}; "
              f"memory: 128 MiB copy best {bandwidth:.1f} GB/s")  # fmt: skip
        for label, (flops_total, moved) in volumes.items():
            t_mm, t_mem = flops_total / best_peak / 1e9, moved / bandwidth / 1e9
            print(f"  [{label}] roofline: matmuls at the peak {1e3 * t_mm:.1f} ms + other ops' bytes at the "
                  f"copy bandwidth {1e3 * t_mem:.1f} ms = {1e3 * (t_mm + t_mem):.1f} ms, i.e. at most "
                  f"{100 * t_mm / (t_mm + t_mem):.0f}% of peak without fusing the other ops away")  # fmt: skip
        for label, fn in variants.items():
            flops_total = sum(count(fn)[0].values())
            t_min, t_med = min(times[label]), statistics.median(times[label])
            g_best, g_med = flops_total / t_min / 1e9, flops_total / t_med / 1e9
            print(f"  [{label:10}] {1e3 * t_min:8.1f} ms best, {1e3 * t_med:8.1f} ms median per call; "
                  f"{args.replicas / t_min:7.0f} replica-steps/s best; {g_best:5.1f} GFLOP/s best "
                  f"({100 * g_best / best_peak:4.1f}% of peak), {g_med:5.1f} median ({100 * g_med / med_peak:4.1f}%)")  # fmt: skip
        if args.profile:
            for label, fn in variants.items():
                print(f"  [{label}]")
                profile_table(fn, 3, 12)


if __name__ == "__main__":
    main()
