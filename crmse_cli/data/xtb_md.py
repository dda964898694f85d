"""Langevin dynamics on the xTB surface: exact-temperature reference frames, resumable.

Each replica is one independent trajectory of one molecule, integrated with BAOAB in numpy
(Leimkuhler & Matthews, Appl. Math. Res. Express 2013, 34-56), step dt, friction gamma:

    B:  v <- v + (dt/2) F(x) / m
    A:  x <- x + (dt/2) v
    O:  v <- c1 v + c2 sqrt(kT/m) xi,   c1 = exp(-gamma dt),  c2 = sqrt(1 - c1^2),  xi ~ N(0, I)
    A:  x <- x + (dt/2) v
    B:  v <- v + (dt/2) F(x) / m      (the step's one force call, reused by the next step)

the same splitting and units as :mod:`crmse_cli.sampling.langevin` (x Å, v Å/fs, m amu, F
kcal/mol/Å; F/m becomes Å/fs^2 through ``AMU_A2_FS2_PER_KCAL_PER_MOL``). BAOAB samples the
configurations of exp(-U/kT) with an O(dt^2) error that vanishes for harmonic modes.

Every ``stride`` steps is a *boundary*: the force call there starts from tblite's default SCF
guess (so the state at a boundary determines the rest of the trajectory), the state is kept in
memory as the resume point, and after the equilibration the frame is kept and labelled. A
checkpoint (positions, velocities, forces, RNG state, frames so far) is written atomically at a
boundary every ``checkpoint_every_s`` seconds and on Ctrl-C, so a resumed replica continues the
same trajectory and loses no frames.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np
from ase.data import atomic_masses

from crmse_cli import workers
from crmse_cli.data.xtb import XtbForceField
from crmse_cli.data.xtb_config import XtbMDConfig
from crmse_cli.errors import DataError
from crmse_cli.fileio import NPZ_READ_ERRORS, atomic_path
from crmse_cli.units import AMU_A2_FS2_PER_KCAL_PER_MOL, kT

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class ReplicaTask:
    """One replica's work; picklable, so a worker process can run it."""

    species: np.ndarray  # (N,)
    start_A: np.ndarray  # (N, 3) Å
    config: XtbMDConfig
    replica: int
    key: str  # identity of the whole generation; a checkpoint of another key is refused
    checkpoint: str | None = None


@dataclass
class ReplicaResult:
    """Kept frames of one replica, labelled; sampling-surface values beside the labels."""

    replica: int
    positions: np.ndarray  # (k, N, 3) Å
    energies: np.ndarray  # (k,) kcal/mol, label method
    forces: np.ndarray  # (k, N, 3) kcal/mol/Å, label method
    sample_energies: np.ndarray  # (k,) kcal/mol, sampling method
    sample_forces: np.ndarray  # (k, N, 3)
    force_calls: int = 0  # calls made in this session (resumed work not counted twice)
    wall_s: float = 0.0
    resumed_from_step: int = 0


@dataclass
class _State:
    x: np.ndarray
    v: np.ndarray
    f: np.ndarray
    e: float
    step: int
    rng_state: dict[str, Any]
    n_kept: int
    frames: dict[str, list[Any]] = field(default_factory=dict)


_FRAME_KEYS = ("positions", "energies", "forces", "sample_energies", "sample_forces")


def _save(path: str, s: _State, key: str) -> None:
    arrays = {k: np.asarray(s.frames[k][: s.n_kept]) for k in _FRAME_KEYS}
    meta = {"key": key, "step": s.step, "energy": s.e, "rng": s.rng_state, "format": CHECKPOINT_FORMAT}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, x=s.x, v=s.v, f=s.f, meta=np.array(json.dumps(meta)), **arrays)  # type: ignore[arg-type]


def _load(path: str, key: str, n_atoms: int) -> _State:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            frames = {k: list(z[k]) if z[k].size else [] for k in _FRAME_KEYS}
            x, v, f = z["x"], z["v"], z["f"]
    except NPZ_READ_ERRORS as exc:  # truncated by a full disk or a copy: refused, never guessed at
        raise DataError(
            f"xTB replica checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); delete it to "
            "restart that replica from its first step (the other replicas keep theirs), or pass "
            "--force to discard the whole generation"
        ) from exc
    if meta.get("key") != key or meta.get("format") != CHECKPOINT_FORMAT or x.shape != (n_atoms, 3):
        raise DataError(f"checkpoint {path} belongs to another generation; pass --force to discard it")
    n = len(frames["energies"])
    return _State(x, v, f, float(meta["energy"]), int(meta["step"]), meta["rng"], n, frames)


def _initial(task: ReplicaTask, ff: XtbForceField, sigma: np.ndarray) -> _State:
    rng = np.random.default_rng([task.config.seed, task.replica])
    x = np.array(task.start_A, dtype=np.float64)
    v = sigma * rng.standard_normal(x.shape)  # Maxwell-Boltzmann at the set temperature
    e, f = ff(x, fresh=True)
    return _State(x, v, f, e, 0, dict(rng.bit_generator.state), 0, {k: [] for k in _FRAME_KEYS})


def run_replica(
    task: ReplicaTask, on_boundary: Callable[[int, int, int], None] | None = None
) -> ReplicaResult:
    """Integrate one replica to its frame count, resuming from its checkpoint if there is one.

    Args:
        task: what to run.
        on_boundary: called ``(replica, step, frames kept)`` at every boundary (progress); an
            exception it raises (KeyboardInterrupt) stops the replica after a checkpoint.

    Returns:
        The replica's kept frames (all of them, resumed ones included).
    """
    cfg = task.config
    t0 = time.perf_counter()
    species = np.asarray(task.species, dtype=np.int64)
    ff = XtbForceField(species, cfg.method, task.start_A)
    lf = XtbForceField(species, cfg.label, task.start_A) if cfg.label != cfg.method else None
    m = atomic_masses[species][:, None]  # (N, 1) amu
    sigma = np.sqrt(kT(cfg.temperature_K) * AMU_A2_FS2_PER_KCAL_PER_MOL / m)  # (N, 1) Å/fs
    half_kick = 0.5 * cfg.timestep_fs * AMU_A2_FS2_PER_KCAL_PER_MOL / m
    c1 = math.exp(-cfg.friction_per_fs * cfg.timestep_fs)
    noise = math.sqrt(max(0.0, 1.0 - c1 * c1)) * sigma
    half_dt = 0.5 * cfg.timestep_fs
    ckpt = task.checkpoint
    s = _load(ckpt, task.key, len(species)) if ckpt and os.path.exists(ckpt) else _initial(task, ff, sigma)
    resumed_from = s.step
    if resumed_from:
        # The boundary's fresh call again: the same forces, and the same SCF guess for the next step.
        s.e, s.f = ff(s.x, fresh=True)
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = s.rng_state
    x, v, f, e, step = s.x.copy(), s.v.copy(), s.f.copy(), s.e, s.step
    frames, n_equil, n_frames = s.frames, cfg.equilibration_steps, cfg.frames_of(task.replica)
    last_save = time.monotonic()
    try:
        while s.n_kept < n_frames:
            v = v + half_kick * f
            x = x + half_dt * v
            v = c1 * v + noise * rng.standard_normal(x.shape)
            x = x + half_dt * v
            step += 1
            boundary = step % cfg.stride == 0
            e, f = ff(x, fresh=boundary)
            v = v + half_kick * f
            if not boundary:
                continue
            n_kept = s.n_kept
            if step > n_equil:
                el, fl = lf(x, fresh=True) if lf is not None else (e, f)
                for k, val in zip(_FRAME_KEYS, (x, el, fl, e, f), strict=True):
                    del frames[k][n_kept:]
                    frames[k].append(np.copy(val) if isinstance(val, np.ndarray) else val)
                n_kept += 1
            s = _State(x.copy(), v.copy(), f.copy(), e, step, dict(rng.bit_generator.state), n_kept, frames)
            if ckpt and time.monotonic() - last_save >= cfg.checkpoint_every_s:
                _save(ckpt, s, task.key)
                last_save = time.monotonic()
            if on_boundary is not None:
                on_boundary(task.replica, step, n_kept)
    except BaseException:  # Ctrl-C, or a failed force call: keep everything up to the last boundary
        if ckpt:
            _save(ckpt, s, task.key)
        raise
    if ckpt:
        _save(ckpt, s, task.key)
    calls = ff.n_calls + (lf.n_calls if lf is not None else 0)
    arr = {k: np.asarray(frames[k][: s.n_kept]) for k in _FRAME_KEYS}
    return ReplicaResult(
        task.replica,
        **arr,
        force_calls=calls,
        wall_s=time.perf_counter() - t0,
        resumed_from_step=resumed_from,
    )


def _stop_here(signum: int, frame: Any) -> None:
    """SIGTERM in a replica's process: stop where it is; the replica keeps its last boundary."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second one must not cut the checkpoint
    raise KeyboardInterrupt


def _replica_worker(task: ReplicaTask, conn: Connection) -> None:
    """Entry point of one replica's process: a message per boundary, then the result.

    Stopped (SIGTERM, from the parent or from the kernel when the parent died): the replica
    writes its checkpoint once and the process exits. Any other failure goes to the parent.
    """
    os.environ["OMP_NUM_THREADS"] = "1"  # before tblite is imported: OpenMP reads it when it loads
    workers.die_with_parent()
    signal.signal(signal.SIGTERM, _stop_here)

    def report(replica: int, step: int, kept: int) -> None:
        conn.send(("boundary", replica, step, kept))  # parent gone: BrokenPipeError stops the replica

    try:
        conn.send(("done", run_replica(task, report)))
    except KeyboardInterrupt:  # stopped: the checkpoint is written, the parent knows why
        raise SystemExit(1) from None
    except BaseException as exc:  # noqa: BLE001 - the parent raises it (DataError, ...)
        try:
            conn.send(("error", exc))
        except Exception:  # noqa: BLE001 - the parent is gone, or exc does not pickle
            try:
                conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
            except Exception:  # noqa: BLE001
                pass
        raise SystemExit(1) from None
    finally:
        conn.close()


def run_replicas(
    tasks: list[ReplicaTask],
    processes: int = 1,
    on_boundary: Callable[[int, int, int], None] | None = None,
    *,
    in_process: bool = False,
) -> list[ReplicaResult]:
    """Run replicas in up to ``processes`` worker processes of one OpenMP thread each.

    One spawned process per replica (:mod:`crmse_cli.workers`), at most ``processes`` at a
    time, with ``OMP_NUM_THREADS=1`` set before tblite loads; the calling process only collects
    progress. A replica that waits for a free process is never handed to one in advance, so a
    stop starts nothing more. Ctrl-C or SIGTERM here stops every worker at once: each writes its
    checkpoint (SIGTERM) and exits, then this function re-raises. Workers die with this process,
    even when it is SIGKILLed. ``in_process=True`` runs the replicas one after the other in this
    process instead (tests; the caller's thread settings then apply).

    Returns:
        The results in replica order.

    Raises:
        BrokenProcessPool: a worker died without a word (killed); the others were stopped.
        Exception: what a worker raised (a DataError of a bad checkpoint, ...).
    """
    if in_process:
        return [run_replica(t, on_boundary) for t in tasks]
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    slots = max(1, min(processes, len(tasks)))
    waiting = list(tasks)
    live: dict[Connection, tuple[int, BaseProcess]] = {}  # reader -> (replica, its process)
    procs: list[BaseProcess] = []
    results: dict[int, ReplicaResult] = {}
    try:
        while waiting or live:
            while waiting and len(live) < slots:
                task = waiting.pop(0)
                reader, writer = ctx.Pipe(duplex=False)
                proc = workers.start(ctx, _replica_worker, (task, writer), f"crmse-xtb-{task.replica}")
                writer.close()  # the worker holds the only write end: its death closes the pipe
                live[reader] = (task.replica, proc)
                procs.append(proc)
            _serve(live, results, on_boundary)
    finally:
        workers.stop(procs)
        for conn in live:
            conn.close()
    return [results[k] for k in sorted(results)]


def _serve(
    live: dict[Connection, tuple[int, BaseProcess]],
    results: dict[int, ReplicaResult],
    on_boundary: Callable[[int, int, int], None] | None,
) -> None:
    """Wait (at most a second) for the workers; read what they sent; drop the finished ones."""
    from concurrent.futures.process import BrokenProcessPool

    sentinels = {proc.sentinel: conn for conn, (_, proc) in live.items()}
    for ready in wait([*live, *sentinels], timeout=1.0):
        conn = sentinels[ready] if isinstance(ready, int) else ready
        if conn not in live:
            continue  # read with the other end of this process already
        replica, proc = live[conn]
        try:
            while conn.poll():
                msg = conn.recv()
                if msg[0] == "boundary" and on_boundary is not None:
                    on_boundary(*msg[1:])
                elif msg[0] == "done":
                    results[replica] = msg[1]
                elif msg[0] == "error":
                    raise msg[1]
        except EOFError:
            pass
        else:
            if not isinstance(ready, int) and replica not in results:
                continue  # more to come
        del live[conn]
        conn.close()
        if replica not in results:
            raise BrokenProcessPool(
                f"the worker of replica {replica} (pid {proc.pid}) died ({workers.how_it_ended(proc)})"
            )
