"""Atomic writes and checksums: a file is either complete or absent, never half-written."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from crmse_cli.errors import DiskFullError

NPZ_READ_ERRORS: tuple[type[BaseException], ...] = (
    KeyError,
    ValueError,
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
)
"""What ``np.load`` of a truncated, damaged or foreign ``.npz`` raises (catch these, say which file)."""


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def disk_full(exc: BaseException, path: Path | str | None = None) -> DiskFullError | None:
    """The :class:`DiskFullError` of ``exc`` when it is a full device or quota, else None.

    Args:
        exc: any exception.
        path: the file being written (default: the one the OSError names).
    """
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(path or exc.filename or "a file")
    return None


def raise_if_disk_full(exc: BaseException, path: Path | str) -> None:
    """Raise :class:`DiskFullError` naming ``path`` when ``exc`` is a full device or quota."""
    full = disk_full(exc, path)
    if full is not None:
        raise full from exc


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path`` (atomic on POSIX).

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates 0600; give the file the mode a plain open() would (reports are shared)
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except OSError as exc:
        raise_if_disk_full(exc, path)
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path | str, writer: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` atomically through ``writer(file_object)``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        writer(fh)
