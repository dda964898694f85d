"""Atomic writes and checksums: a file is either complete or absent, never half-written."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from crmse_cli.errors import CrmseError, DiskFullError

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


def check_output_path(path: Path | str) -> None:
    """Refuse to write ``path`` unless it is a regular file or does not exist yet.

    crmse writes a file by renaming a finished temporary file over it, which would replace a
    symbolic link by a file (not write through it), a device such as ``/dev/full`` by a JSON file
    (as root), and fail on a folder. Such targets are refused in one line instead.

    Raises:
        CrmseError: ``path`` is a symbolic link, a folder, a device, a FIFO or a socket.
    """
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return  # a new path (a file on the way is refused when its folder is made)
    if stat.S_ISREG(mode):
        return
    kind = (
        "a symbolic link" if stat.S_ISLNK(mode)
        else "a folder" if stat.S_ISDIR(mode)
        else "a device, FIFO or socket"
    )  # fmt: skip
    raise CrmseError(
        f"{path} is {kind}, not a regular file: crmse replaces the files it writes, so name a "
        "regular file or a new path"
    )


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path`` (atomic on POSIX).

    On any exception the temporary file is removed and ``path`` is left as it was. ``path`` must
    be a regular file or a new path (:func:`check_output_path`).
    """
    path = Path(path)
    check_output_path(path)
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
