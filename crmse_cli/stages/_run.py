"""Run bookkeeping shared by the stages: a run's context, its status on success, failure and Ctrl-C.

A stage is a plan (a frozen spec built from its inputs, no side effects) and an execute
(``execute(context, spec)``); :class:`RunContext` is the run the execute works on: the lock, the
status transitions, artifact and checkpoint registration (with checksums) and metric rows. The
sweep worker makes the context of a queued run itself and executes the same spec.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from crmse_cli.errors import CrmseError, DiskFullError, interrupt_in
from crmse_cli.fileio import sha256_file
from crmse_cli.metric import Metric
from crmse_cli.registry.store import Registry, RunInfo, next_step
from crmse_cli.runlock import RunLock
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
        interrupt = interrupt_in(exc)
        if interrupt is not None:  # Ctrl-C or SIGTERM that a library's cleanup turned into its error
            with closing_write():
                registry.set_status(run_id, "interrupted", error="interrupted by the user (Ctrl-C)")
            interrupt.crmse_message = f"run {run_id} interrupted; {_next_step(registry, run_id)}"  # type: ignore[attr-defined]
            raise
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


@dataclass(frozen=True)
class NewRun:
    """What a plan records on the run row it starts: kind, config, and the row's links.

    Attributes:
        kind: one of ``RUN_KINDS``.
        config: the resolved config (JSON; see docs/architecture.md for the keys every run has).
        dataset: the dataset name, or None.
        parent: the run it starts from, or None.
        seed: the run's seed, or None.
        name: its unique name, or None (a queued run keeps the name it was queued with).
    """

    kind: str
    config: Mapping[str, object]
    dataset: str | None = None
    parent: str | None = None
    seed: int | None = None
    name: str | None = None


class RunContext:
    """One run as a stage's execute sees it: its lock, status, artifacts and metric rows.

    Made by :meth:`create` (a new run, or a sweep's queued run: the same start either way) or
    :meth:`resume`; ``with context:`` holds the run's lock and closes the run as
    :func:`tracked` does (completed, interrupted or failed). ``owner=False`` (the other ranks of
    a torchrun job) holds no lock and writes nothing: rank 0 owns the run.
    """

    def __init__(
        self, ws: Workspace, registry: Registry, run_id: str, *, lock: RunLock | None, owner: bool = True
    ) -> None:
        self.ws, self.registry, self.run_id = ws, registry, run_id
        self.owner = owner
        self._lock = lock
        self._tracked: AbstractContextManager[None] | None = None

    @classmethod
    def create(
        cls, ws: Workspace, registry: Registry, new: NewRun, *, queued: str | None = None
    ) -> RunContext:
        """Start run ``new``: a new row, or queued run ``queued`` (a sweep's job) turned running.

        Either way the row ends ``running``, owned by this process, with ``new``'s config (a
        queued run keeps its ``sweep`` entry and its name).
        """
        if queued is None:
            info = registry.create_run(
                kind=new.kind,
                name=new.name,
                dataset=new.dataset,
                parent=new.parent,
                config=new.config,
                seed=new.seed,
            )
        else:
            info = registry.start_queued_run(
                queued,
                kind=new.kind,
                dataset=new.dataset,
                parent=new.parent,
                config=new.config,
                seed=new.seed,
            )
        return cls(ws, registry, info.id, lock=own_run(ws, info.id))

    @classmethod
    def resume(cls, ws: Workspace, registry: Registry, run_id: str) -> RunContext:
        """Take the lock of existing run ``run_id`` (refused while a live process owns it).

        The run stays as it is until :meth:`mark_running`: check what it resumes from first.
        """
        return cls(ws, registry, run_id, lock=own_run(ws, run_id))

    def mark_running(self) -> None:
        """A resumed run is this process's running run from now on."""
        if self.owner:
            self.registry.set_status(self.run_id, "running")

    @property
    def run(self) -> RunInfo:
        """The run's row as it is now."""
        return self.registry.get_run(self.run_id)

    @property
    def run_dir(self) -> Path:
        """The run's folder (``checkpoints/``, ``artifacts/``)."""
        return self.ws.run_dir(self.run_id)

    def artifact_path(self, filename: str) -> Path:
        """``artifacts/<filename>`` of the run, its folder made."""
        folder = self.run_dir / "artifacts"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / filename

    # -- writes (rank 0 only) ------------------------------------------------------------------
    def log_metrics(self, rows: Iterable[Metric]) -> None:
        """Write metric rows in one transaction (nothing on a rank that does not own the run)."""
        if self.owner:
            self.registry.log_metrics(self.run_id, rows)

    def log_metric(
        self, name: str, value: float, unit: str, *, step: int | None = None, split: str | None = None
    ) -> None:
        """Write one metric row."""
        self.log_metrics([Metric(name=name, value=value, unit=unit, step=step, split=split)])

    def add_artifact(self, kind: str, path: Path, *, meta: Mapping[str, object] | None = None) -> None:
        """Register file ``path`` (written already) as an artifact of ``kind``, with its checksum."""
        if self.owner:
            self.registry.add_artifact(
                self.run_id, kind=kind, path=str(path), sha256=sha256_file(path), meta=meta
            )

    def add_checkpoint(self, path: Path, *, sha256: str, step: int, format_version: int, tag: str) -> None:
        """Register checkpoint ``path`` (written already, checksum ``sha256``) as ``tag``."""
        if self.owner:
            self.registry.add_checkpoint(
                self.run_id, path=str(path), sha256=sha256, step=step, format_version=format_version, tag=tag
            )

    # -- the run's life ------------------------------------------------------------------------
    def __enter__(self) -> RunContext:
        if self.owner:
            self._tracked = tracked(self.registry, self.run_id)
            self._tracked.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        try:
            if self._tracked is not None:
                return self._tracked.__exit__(kind, exc, tb)
            return None
        finally:
            if self._lock is not None:
                self._lock.release()
