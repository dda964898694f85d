"""benchmarks/bench_anchors.py's core on a tiny case, so the benchmark cannot rot.

No timing is asserted: the in-process engines run a few steps of a tiny PaiNN and each gives a
finite positive rate; the table's ratios are checked on made-up rates.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import torch

from crmse_cli.model import ModelConfig, build_potential

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_anchors.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_anchors", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_anchors"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_in_process_engine_runs_on_a_tiny_case() -> None:
    bench = load_bench()
    torch.manual_seed(0)
    pot = build_potential(ModelConfig(features=8, layers=1, n_rbf=4), [1, 6, 8]).eval()
    settings = bench.Settings(replicas=3, steps=2, ase_steps=2, processes=2, rounds=1)
    rows = bench.measure(["ethanol"], {"painn": pot}, settings, processes=False)
    measured = [r for r in rows if not r.note]
    engines = {(r.engine, r.processes, r.threads, r.replicas) for r in measured}
    expected = {("ASE Langevin (1 mol)", 1, 1, 1), ("crmse BAOAB eager", 1, 1, 3)}
    _, why = bench.torchsim_class()
    if not why:  # torch-sim installed: batched on 1 thread and on the processes' 2 cores
        expected |= {("torch-sim nvt_langevin", 1, 1, 3), ("torch-sim nvt_langevin", 1, 2, 3)}
    else:  # without it, one row says why instead of a rate
        skipped = [r for r in rows if r.note]
        assert [(r.engine, r.rates) for r in skipped] == [("torch-sim nvt_langevin", [])]
        assert "torch-sim is not installed" in skipped[0].note
    assert engines == expected
    for r in measured:
        assert len(r.rates) == 1 and math.isfinite(r.rate) and r.rate > 0, r
    assert "replica-steps/s" in bench.table(rows)
    assert "load average" in bench.machine_line("start")


def test_table_gives_ratios_against_ase_and_torchsim_on_the_same_cores() -> None:
    bench = load_bench()

    def row(engine: str, procs: int, threads: int, rate: float) -> object:
        return bench.Row("ethanol", "painn", engine, procs, threads, 8, rates=[rate / 2, rate])

    rows = [
        row("ASE Langevin (1 mol)", 1, 1, 10.0),
        row("torch-sim nvt_langevin", 1, 1, 20.0),
        row("torch-sim nvt_langevin", 1, 2, 30.0),
        row("crmse sample eager", 2, 1, 90.0),
    ]
    lines = bench.table(rows).splitlines()
    last = next(line for line in lines if "crmse sample eager" in line).split()
    assert last[-3:] == ["90.0", "9.00", "3.00"]  # best round; / ASE; / torch-sim on 2 cores
    ase = next(line for line in lines if "ASE Langevin" in line).split()
    assert ase[-2:] == ["1.00", "0.50"]  # ASE on one core against torch-sim on one thread
