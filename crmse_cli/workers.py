"""Worker processes of one command, started, watched and stopped the same way everywhere.

`sample --processes` (:mod:`crmse_cli.stages.sample_shards`) and `fetch xtb --processes`
(:mod:`crmse_cli.data.xtb_md`) run their work in spawned processes (never forked: torch's
threads, OpenMP and the registry's handles stay in the parent). The rules they share:

- The parent talks to each worker over its own pipe whose write end only the worker holds, and
  waits on the pipes and the process sentinels at once, so a worker that dies is seen at once.
- Workers start with SIGINT ignored (:func:`start`): the terminal's Ctrl-C reaches the whole
  process group, and only the parent decides. The parent stops its workers with :func:`stop`:
  SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT_S`.
- A worker dies with its parent (:func:`die_with_parent`): on Linux the kernel sends it SIGTERM
  when the parent ends, even by SIGKILL (``PR_SET_PDEATHSIG``); elsewhere it notices at its next
  message (a broken pipe).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any

STOP_TIMEOUT_S = 10.0
"""How long a stopped worker may take to exit on SIGTERM (writing its checkpoint) before it is killed."""
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def start(ctx: SpawnContext, target: Callable[..., Any], args: tuple[Any, ...], name: str) -> BaseProcess:
    """Start ``target(*args)`` in a spawned daemon process that begins with SIGINT ignored.

    The ignored SIGINT is inherited through exec, so a Ctrl-C while the worker still imports
    prints no traceback from it; the parent's own SIGINT handler is restored at once.
    """
    proc = ctx.Process(target=target, args=args, name=name, daemon=True)
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals stay as they are
        proc.start()
        return proc
    try:
        proc.start()
    finally:
        signal.signal(signal.SIGINT, previous)
    return proc


def die_with_parent() -> None:
    """In a worker: end this process (SIGTERM) when the parent that started it dies.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGTERM)``, which fires when the parent's starting thread
    ends (the stages start workers from their main thread). A parent already gone by then ends
    the worker here. Other systems: the worker's next message fails (broken pipe).
    """
    import multiprocessing

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        except (OSError, AttributeError):  # no prctl: the broken pipe is the fallback
            pass
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died before prctl took effect
        raise SystemExit(1)


def stop(procs: list[BaseProcess]) -> None:
    """End every worker still running: SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT_S`."""
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=STOP_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            proc.join()


def how_it_ended(proc: BaseProcess) -> str:
    """``killed by SIGKILL`` or ``exit code 1``: how a worker process ended (after a join)."""
    proc.join(timeout=1.0)
    code = proc.exitcode
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
