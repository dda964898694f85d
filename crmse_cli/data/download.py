"""Streaming, resumable, verified downloads into the workspace cache (urllib only).

A transfer writes ``<file>.part``; after an interruption the next call resumes it with an HTTP
Range request (a server that ignores Range restarts it from zero). The file takes its final
name only after its size and sha256 match, so a corrupt or truncated download is never used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from crmse_cli.data.sources import RemoteFile
from crmse_cli.errors import DataError, NetworkError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT_S = 60
Progress = Callable[[int, int | None], None]
"""progress(bytes_done, bytes_total_or_None)."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _transfer(url: str, part: Path, progress: Progress | None) -> None:
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "crmse"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
        status = getattr(resp, "status", 200)
        if have and status != 206:  # the server ignored Range: start again
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if have else "wb") as fh:
            done = have
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                fh.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
            fh.flush()
            os.fsync(fh.fileno())
    if total is not None and part.stat().st_size < total:
        raise NetworkError(f"download of {url} stopped at {part.stat().st_size} of {total} bytes; rerun to resume")


def fetch_file(remote: RemoteFile, cache_dir: Path, *, progress: Progress | None = None) -> Path:
    """``cache_dir/remote.filename``, downloaded and verified if not already there."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / remote.filename
    if final.exists():
        return final
    part = final.with_name(final.name + ".part")
    errors = []
    for url in remote.urls:
        try:
            _transfer(url, part, progress)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and part.exists():  # Range past the end: the .part is complete (or bad)
                pass
            else:
                errors.append(f"{url}: HTTP {exc.code}")
                continue
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
            continue
        _verify(remote, part)
        os.replace(part, final)
        return final
    raise NetworkError(
        f"could not download {remote.filename} ({'; '.join(errors)}); on an offline machine copy the file "
        f"and pass it with --from PATH"
    )


def _verify(remote: RemoteFile, part: Path) -> None:
    size = part.stat().st_size
    if remote.size is not None and size != remote.size:
        if size > remote.size:
            part.unlink()
        raise DataError(
            f"{remote.filename}: got {size} bytes, expected {remote.size}; "
            + ("the partial file was removed, rerun to download again" if not part.exists() else "rerun to resume")
        )
    if remote.sha256:
        got = sha256_of(part)
        if got != remote.sha256:
            part.unlink()
            raise DataError(
                f"{remote.filename}: sha256 {got[:16]}... does not match the pinned {remote.sha256[:16]}...; "
                "the corrupt file was removed, rerun to download again"
            )
