"""One owner per run: an exclusive OS lock on a file in the run's folder.

The process that runs (or resumes) a run holds ``<run dir>/owner.lock`` locked with
``fcntl.flock`` for as long as it works on the run. The kernel releases the lock when the
process ends in any way (exit, Ctrl-C, SIGKILL, a crash), so a lock that is held always means
a live owner: unlike a recorded pid, it cannot be fooled by a reused process id. The file also
holds the owner's pid and start time, only to name the owner in messages.

On platforms without ``fcntl`` (Windows) locking is skipped and only the registry's recorded
pid is used.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from crmse_cli.errors import CrmseError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "owner.lock"


class RunBusyError(CrmseError):
    """Another live process owns the run."""


def lock_path(run_dir: Path | str) -> Path:
    """The lock file of the run whose folder is ``run_dir``."""
    return Path(run_dir) / LOCK_NAME


def _owner_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "another process"
    pid = text.split()[0] if text else ""
    return f"process {pid}" if pid.isdigit() else "another process"


class RunLock:
    """The held lock of one run; release it with :meth:`release` or as a context manager."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def acquire(cls, run_dir: Path | str, run_id: str) -> RunLock:
        """Take the run's lock, or refuse in one line naming the process that holds it.

        Raises:
            RunBusyError: a live process owns the run.
            CrmseError: the run folder cannot be written.
        """
        path = lock_path(run_dir)
        if fcntl is None:  # pragma: no cover
            return cls(path, None)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise CrmseError(
                f"cannot create the lock file {path} of run {run_id} ({exc.strerror or exc}); "
                "check that the workspace is writable"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise CrmseError(f"cannot lock {path} of run {run_id} ({exc.strerror or exc})") from exc
            raise RunBusyError(_busy(path, run_id)) from exc
        started = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()} {started}\n".encode())
        return cls(path, fd)

    def release(self) -> None:
        """Give the run up (the kernel does this too when the process ends)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __del__(self) -> None:  # a lock object dropped on an error path frees the run
        self.release()

    @property
    def held(self) -> bool:
        """Whether this process holds the lock."""
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _busy(path: Path, run_id: str) -> str:
    return (
        f"run {run_id} is being run by {_owner_text(path)} right now; wait for it to end "
        "or stop that process before you resume the run"
    )


def refuse_if_busy(run_dir: Path | str, run_id: str) -> None:
    """Refuse (RunBusyError, one line naming the owner) while a live process holds the run's lock.

    A check that only reads, for a resume's plan, before anything it would resolve can fail on a
    run that is in fact still running; the lock itself is taken when the run executes.
    """
    if owner_alive(run_dir):
        raise RunBusyError(_busy(lock_path(run_dir), run_id))


def owner_alive(run_dir: Path | str) -> bool | None:
    """Whether a live process holds the run's lock; None when the run has no lock file.

    Only reads: works in a read-only workspace (``flock`` needs no write access).
    """
    path = lock_path(run_dir)
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


__all__ = ["LOCK_NAME", "RunBusyError", "RunLock", "lock_path", "owner_alive"]
