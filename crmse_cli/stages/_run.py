"""Run bookkeeping shared by the stages: status on success, failure and Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from crmse_cli.errors import CrmseError, DiskFullError
from crmse_cli.registry.store import next_step
from crmse_cli.runlock import RunLock

if TYPE_CHECKING:
    from crmse_cli.registry.store import Registry
    from crmse_cli.workspace import Workspace

log = logging.getLogger(__name__)


@contextmanager
def tracked(registry: Registry, run_id: str) -> Iterator[None]:
    """Close ``run_id``: completed, interrupted (Ctrl-C, a full disk) or failed (other errors).

    The exception is re-raised after the status is written, so the CLI still reports it. Work
    the block saved (checkpoints, artifacts) stays registered either way, and ``--resume`` can
    continue from it.
    """
    try:
        yield
    except KeyboardInterrupt as exc:
        with closing_write():
            registry.set_status(run_id, "interrupted", error="interrupted by the user (Ctrl-C)")
        # The CLI prints this line (crmse_cli.cli.app.main): what happened and what to do next.
        exc.crmse_message = f"run {run_id} interrupted; {_next_step(registry, run_id)}"  # type: ignore[attr-defined]
        raise
    except DiskFullError as exc:  # not the run's fault: its saved work resumes once space is freed
        step = _next_step(registry, run_id)
        try:
            with closing_write():
                registry.set_status(run_id, "interrupted", error=str(exc))
            marked = f"run {run_id} is marked interrupted"
        except CrmseError:  # the registry is on the full disk too: `crmse runs` reaps the run later
            marked = f"`crmse runs` marks run {run_id} interrupted once this process has ended"
        raise DiskFullError(exc.path, then=f"{step} ({marked})") from exc
    except CrmseError as exc:
        with closing_write():
            registry.set_status(run_id, "failed", error=str(exc))
        raise
    except BaseException as exc:
        with closing_write():
            registry.set_status(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    else:
        with closing_write(redeliver=True):
            registry.set_status(run_id, "completed")


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def closing_write(*, redeliver: bool = False) -> Iterator[None]:
    """Hold SIGTERM and Ctrl-C while a run's closing status is written.

    A stop signal that lands inside the write would abort it and leave the run ``running`` (then
    reaped as ``interrupted``): torchrun sends SIGTERM to the survivors of a crashed rank at about
    the moment their collective fails, so a run whose rank died ended ``interrupted`` instead of
    ``failed`` now and then. Held signals are dropped when the block runs on an error path (the
    process is already ending with that error) and delivered after it otherwise
    (``redeliver=True``). Python handlers only run in the main thread; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: object) -> None:
        held.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if redeliver and held:
            signal.raise_signal(held[0])


def _next_step(registry: Registry, run_id: str) -> str:
    try:
        kind = registry.get_run(run_id).kind
    except Exception:  # noqa: BLE001 - the message must not fail on a broken registry
        return "see `crmse show " + run_id + "`"
    return str(next_step(kind, run_id))


def own_run(ws: Workspace, run_id: str) -> RunLock:
    """Take the lock of run ``run_id`` for this process (see :mod:`crmse_cli.runlock`).

    Call it before the run is marked ``running``; hold the returned lock (``with lock:``) while
    working on the run. Raises ``RunBusyError`` naming the pid when a live process owns it.
    """
    return RunLock.acquire(ws.run_dir(run_id), run_id)
