"""`crmse sample --processes N`: the replicas of one sample run sharded over N worker processes.

Each worker is a spawned process with one torch thread. It loads the checkpoint, integrates a
contiguous slice of the replicas (:func:`crmse_cli.sampling.shard.split_rows`) with the noise of
those rows of the one-process draw, so every replica follows the trajectory it would follow in
one process up to floating-point reassociation in the force path, runs its own stability monitor
and writes its frames to a shard file. Every few hundred steps it sends the parent one small
message (step, replicas that left, summed kinetic temperature) through its own pipe; the parent
draws one progress bar from them and keeps the registry rows. At the end the parent merges the
shards into one samples artifact (:func:`crmse_cli.sampling.trajectory.merge_trajectories`,
written atomically) and registers it; the shards are deleted.

Failure: the parent waits on every worker's pipe and process sentinel at once, so a worker that
dies (an exception, or SIGKILL) is noticed within a second; the other workers are stopped
(SIGTERM, then SIGKILL), the shards are deleted and the run fails with one line. Ctrl-C or
SIGTERM in the parent stops the workers the same way and the run is marked ``interrupted``
(workers ignore SIGINT: the terminal's Ctrl-C reaches the whole process group, and only the parent
decides). A sharded run keeps no partial samples: ``sample`` has no resume, it is started again.
A worker dies with its parent, even a SIGKILLed one. Starting, stopping and the death of the
parent are :mod:`crmse_cli.workers`, shared with ``fetch xtb --processes``.

The registry is touched by the parent only; the workers never open it.
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np

from crmse_cli import workers
from crmse_cli.errors import CrmseError
from crmse_cli.model.allocator import tune_allocator
from crmse_cli.model.checkpoint import load_checkpoint
from crmse_cli.model.forces import force_field
from crmse_cli.sampling.kinds import SamplerKind, build_sampler, sampler_kind
from crmse_cli.sampling.monitor import StabilityMonitor
from crmse_cli.sampling.observers import SamplerState
from crmse_cli.sampling.sample_config import Report, SampleConfig, report_interval
from crmse_cli.sampling.shard import ReplicaRows, split_rows
from crmse_cli.sampling.trajectory import TrajectoryRecorder

EXIT_GRACE_S = 2.0
"""How long a worker that reported ``done`` may take to exit before it is stopped (its shard is
written; the interpreter's teardown of torch can take seconds on a busy machine)."""


@dataclass(frozen=True)
class ShardJob:
    """What one worker needs (pickled to the spawned process).

    Attributes:
        rank: 0..processes-1, the worker's place in the replica order.
        rows: its replicas.
        checkpoint: the potential's checkpoint file (verified by the parent).
        config: the run's settings.
        start: (rows.count, N, 3) Å, its replicas' start frames.
        species: (N,) atomic numbers.
        monitor: the stability monitor's settings (:meth:`StabilityMonitor.settings`; plain
            numpy arrays, so no tensor goes through torch's shared-memory pickling).
        out: the shard file to write.
        report_every: send a progress message every this many steps.
        sampler: the sampler's kind (the parent's registry entry: a sampler registered at run
            time in the parent is built in the worker too).
        trust_code: the checkpoint may run the code it stores (decided by the parent).
        compile_cache: compile the forces, kernels cached in this folder (None: eager).
    """

    rank: int
    rows: ReplicaRows
    checkpoint: str
    config: SampleConfig
    start: np.ndarray
    species: np.ndarray
    monitor: dict[str, Any]
    out: str
    report_every: int
    sampler: SamplerKind
    trust_code: bool = False
    compile_cache: str | None = None


def sample_in_processes(
    checkpoint: Path,
    cfg: SampleConfig,
    start: np.ndarray,
    species: np.ndarray,
    monitor: StabilityMonitor,
    folder: Path,
    on_report: Report,
    *,
    trust_code: bool = False,
    compile_cache: Path | None = None,
) -> list[Path]:
    """Run ``cfg.processes`` workers over the replicas; return their shard files in replica order.

    Args:
        checkpoint: the potential's checkpoint file.
        cfg: the settings (``processes`` > 1, device cpu).
        start: (B, N, 3) Å start frames of all replicas.
        species: (N,) atomic numbers.
        monitor: the stability monitor (each worker builds one with its settings).
        folder: where the shard files go (created; the caller deletes it).
        on_report: called once per reporting step with the figures of all replicas.
        trust_code: the checkpoint may run the code it stores (``ModelHandle.trusted``).
        compile_cache: compile each worker's forces, kernels cached here (None: eager).

    Raises:
        CrmseError: a worker failed or died (one line naming it); the others were stopped.
        KeyboardInterrupt: Ctrl-C; the workers were stopped.
    """
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [
        ShardJob(
            rank=k,
            rows=rows,
            checkpoint=str(checkpoint),
            config=cfg,
            start=np.ascontiguousarray(start[rows.start : rows.stop]),
            species=np.asarray(species),
            monitor=monitor.settings(),
            out=str(folder / f"shard-{k}.npz"),
            report_every=report_interval(cfg),
            sampler=sampler_kind(cfg.integrator),
            trust_code=trust_code,
            compile_cache=None if compile_cache is None else str(compile_cache),
        )
        for k, rows in enumerate(split_rows(cfg.replicas, cfg.processes))
    ]
    ctx = mp.get_context("spawn")  # no fork: torch's threads and the registry's handles stay here
    procs: list[BaseProcess] = []
    conns: list[Connection] = []
    try:
        for job in jobs:
            reader, writer = ctx.Pipe(duplex=False)
            name = f"crmse-sample-{job.rank}"
            proc = workers.start(ctx, _worker, (job, writer), name)
            writer.close()  # the worker holds the only write end: its death closes the pipe
            procs.append(proc)
            conns.append(reader)
        _collect(procs, conns, on_report, cfg.replicas)
        for ended in procs:  # each sent "done" after its shard was written: a moment to exit on its own
            ended.join(timeout=EXIT_GRACE_S)
    finally:
        workers.stop(procs)
        for conn in conns:
            conn.close()
    return [Path(job.out) for job in jobs]


def _collect(procs: list[BaseProcess], conns: list[Connection], on_report: Report, replicas: int) -> None:
    """Read the workers' messages until all are done; raise when one fails or dies."""
    n = len(procs)
    done = [False] * n
    last_step = [0] * n
    pending: dict[int, dict[int, tuple[float, int, float]]] = {}
    live = dict(enumerate(conns))

    def handle(rank: int, msg: tuple[Any, ...]) -> None:
        if msg[0] == "report":
            _, step, time_fs, n_left, temp_sum = msg
            last_step[rank] = step
            pending.setdefault(step, {})[rank] = (time_fs, n_left, temp_sum)
            if len(pending[step]) == n:  # every worker passed this step: one row for all replicas
                parts = list(pending.pop(step).values())
                n_left = sum(p[1] for p in parts)
                on_report(step, parts[0][0], n_left, sum(p[2] for p in parts) / replicas)
        elif msg[0] == "done":
            done[rank] = True
        else:
            raise CrmseError(f"sample worker {rank} failed: {msg[1]}")

    while not all(done):
        sentinels = {procs[r].sentinel: r for r in range(n) if not done[r]}
        for ready in wait([*live.values(), *sentinels], timeout=1.0):
            if isinstance(ready, int):  # a process ended: read what it sent last, then judge
                rank = sentinels[ready]
                _drain(rank, live, handle)
                if not done[rank]:
                    raise CrmseError(_death(procs[rank], rank, n, last_step[rank]))
                continue
            found = [r for r, c in live.items() if c is ready]
            if not found:  # drained above with its process's sentinel
                continue
            rank = found[0]
            try:
                msg = live[rank].recv()
            except EOFError:
                del live[rank]  # the sentinel tells whether it ended well
                continue
            handle(rank, msg)


def _drain(rank: int, live: dict[int, Connection], handle: Callable[[int, tuple[Any, ...]], None]) -> None:
    conn = live.pop(rank, None)
    try:
        while conn is not None and conn.poll():
            handle(rank, conn.recv())
    except EOFError:
        pass


def _death(proc: BaseProcess, rank: int, n: int, step: int) -> str:
    how = workers.how_it_ended(proc)
    return (
        f"sample worker {rank} of {n} (pid {proc.pid}) died ({how}) after step {step}; the other workers "
        "were stopped and no samples were kept: start the sample again"
    )


def remove_shards(folder: Path) -> None:
    """Delete the shard folder (after the merge, or after a failure)."""
    shutil.rmtree(folder, ignore_errors=True)


# -- the worker process ------------------------------------------------------------------------


def _worker(job: ShardJob, conn: Connection) -> None:
    """Entry point of a worker: run the shard, then say ``done`` (or ``error`` and exit 1)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the process group; the parent decides
    workers.die_with_parent()
    try:
        _run_shard(job, conn)
        conn.send(("done",))
    except BaseException as exc:  # noqa: BLE001 - told to the parent in one line, then exit 1
        text = str(exc) if isinstance(exc, CrmseError) else f"{type(exc).__name__}: {exc}"
        try:
            conn.send(("error", text.splitlines()[0] if text else type(exc).__name__))
        except (OSError, ValueError):
            pass  # the parent is gone
        raise SystemExit(1) from None
    finally:
        conn.close()


def _run_shard(job: ShardJob, conn: Connection) -> None:
    import torch


    torch.set_num_threads(1)
    tune_allocator()  # a process that only samples: keep the force path's pages mapped
    cfg = job.config
    potential, _ = load_checkpoint(job.checkpoint, device="cpu", dtype=cfg.dtype, trust_code=job.trust_code)
    potential.eval()
    dtype = potential.dtype
    gen = torch.Generator().manual_seed(cfg.seed)  # the same stream as one process: rows pick theirs
    cache = None if job.compile_cache is None else Path(job.compile_cache)
    force_fn = force_field(
        potential, torch.as_tensor(job.species), compiled=cache is not None, cache_dir=cache
    )
    sampler = build_sampler(
        job.sampler,
        force_fn,
        cfg.sampler_settings,
        generator=gen,
        species=job.species,
        dtype=dtype,
        rows=job.rows,
    )
    monitor = StabilityMonitor(**job.monitor)
    recorder = TrajectoryRecorder(job.species, monitor=monitor)
    sampler.attach(lambda s: monitor.update(s.positions, s.step, s.time_fs), every=cfg.check_every)
    sampler.attach(recorder, every=cfg.record_every)

    def report(s: SamplerState) -> None:
        n_left = int(monitor.left.sum()) if monitor.n_replicas else 0
        temp = float(sampler.kinetic_temperature(s).sum())  # NaN without velocities
        conn.send(("report", int(s.step), float(s.time_fs), n_left, temp))

    sampler.attach(report, every=job.report_every)
    state = sampler.init_state(torch.as_tensor(job.start, dtype=dtype))
    sampler.run(state, cfg.steps)
    if sampler.interrupted:
        raise CrmseError("interrupted")
    recorder.save(job.out, meta={"rows": [job.rows.start, job.rows.stop], "rank": job.rank})
