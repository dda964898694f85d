"""Streaming, resumable, verified downloads into the workspace cache (urllib only).

A transfer writes ``<file>.part`` in blocks. When the connection drops, the next attempt (in
the same call, or a later ``crmse fetch``) resumes it with an HTTP ``Range`` request; a server
that ignores ``Range`` restarts it from zero. The file takes its final name only after its size
and sha256 match the pinned ones, so a corrupt or truncated download is never used: a wrong
checksum removes the ``.part``, a short file keeps it for the next resume.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from crmse_cli import __version__
from crmse_cli.data.sources import RemoteFile
from crmse_cli.errors import DataError, NetworkError
from crmse_cli.fileio import raise_if_disk_full, sha256_file

log = logging.getLogger(__name__)

CHUNK = 1 << 20
"""Bytes per read and write."""
TIMEOUT_S = 60.0
"""Seconds without data before a connection counts as dropped."""
ATTEMPTS_PER_URL = 3
"""Transfers (the first plus resumes) tried per URL before moving to the next mirror."""

Progress = Callable[[int, int | None], None]
"""``progress(bytes_done, bytes_total_or_None)``, called after each block."""


class _Interrupted(Exception):
    """A transfer stopped early; the ``.part`` file holds what arrived."""


def _content_range_start(header: str | None) -> int | None:
    match = re.match(r"bytes\s+(\d+)-", header or "")
    return int(match.group(1)) if match else None


def _transfer(url: str, part: Path, progress: Progress | None, timeout_s: float) -> None:
    """Append the rest of ``url`` to ``part`` (resuming with Range when ``part`` is not empty)."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": f"crmse/{__version__}"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            status = int(getattr(resp, "status", 200))
            if have and (status != 206 or _content_range_start(resp.headers.get("Content-Range")) != have):
                log.info("%s ignored the Range request; downloading from the start", url)
                have = 0
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length is not None and length.isdigit() else None
            done = have
            with open(part, "ab" if have else "wb") as fh:
                read = getattr(resp, "read1", resp.read)  # what has arrived, not a full CHUNK
                while block := read(CHUNK):
                    fh.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
                fh.flush()
                os.fsync(fh.fileno())
    except http.client.IncompleteRead as exc:
        raise _Interrupted(f"connection dropped: {exc}") from exc
    except (http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        raise _Interrupted(f"{type(exc).__name__}: {exc}") from exc
    except OSError as exc:  # a full disk is not a network failure: say so, keep the .part
        raise_if_disk_full(exc, part)
        raise
    if total is not None and done < total:
        raise _Interrupted(f"stopped at {done} of {total} bytes")


def _verify(remote: RemoteFile, path: Path) -> None:
    """Raise :class:`DataError` unless ``path`` has the pinned size and sha256.

    A file longer than expected or with the wrong checksum is removed; a shorter one is kept,
    so that the next call resumes it.
    """
    size = path.stat().st_size
    if remote.size is not None and size < remote.size:
        raise NetworkError(
            f"{remote.filename}: got {size} of {remote.size} bytes; rerun to resume the download"
        )
    if remote.size is not None and size > remote.size:
        path.unlink()
        raise DataError(
            f"{remote.filename}: got {size} bytes, expected {remote.size}; the file was removed, "
            "rerun to download it again"
        )
    got = sha256_file(path)
    if got != remote.sha256:
        path.unlink()
        raise DataError(
            f"{remote.filename}: sha256 {got[:12]}... does not match the pinned {remote.sha256[:12]}... "
            "(corrupt download); the file was removed, rerun to download it again"
        )


def _cached(remote: RemoteFile, final: Path) -> bool:
    """True if ``final`` exists and still matches; a corrupt cached file is removed."""
    if not final.exists():
        return False
    try:
        _verify(remote, final)
    except (DataError, NetworkError):
        log.warning("cached %s no longer matches its checksum; downloading it again", final)
        final.unlink(missing_ok=True)
        return False
    return True


def fetch_file(
    remote: RemoteFile,
    cache_dir: Path,
    *,
    progress: Progress | None = None,
    attempts: int = ATTEMPTS_PER_URL,
    timeout_s: float = TIMEOUT_S,
) -> Path:
    """``cache_dir / remote.filename``: downloaded once, resumed after interruptions, verified.

    Args:
        remote: what to download (URLs tried in order, pinned sha256 and size).
        cache_dir: the workspace cache folder; created if needed.
        progress: optional callback ``progress(bytes_done, bytes_total_or_None)``.
        attempts: transfers per URL (the first and its resumes) before the next mirror.
        timeout_s: seconds without data before a connection counts as dropped.

    Returns:
        The path of the verified file.

    Raises:
        NetworkError: no URL could be downloaded (the ``.part`` file is kept for a resume).
        DataError: the download does not match the pinned checksum (the file is removed).
    """
    if not remote.sha256:
        raise DataError(f"no pinned sha256 for {remote.filename}; refusing to download an unverifiable file")
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / remote.filename
    if _cached(remote, final):
        log.info("using cached %s", final)
        return final
    part = final.with_name(final.name + ".part")
    if part.exists() and remote.size is not None and part.stat().st_size >= remote.size:
        _verify(remote, part)  # complete from an earlier run: no transfer needed
        os.replace(part, final)
        return final
    errors: list[str] = []
    bad: list[str] = []  # transfers that completed but did not verify
    for url in remote.urls:
        error = _download_from(url, part, progress, attempts, timeout_s)
        if error is None:
            try:
                _verify(remote, part)
            except DataError as exc:  # corrupt copy at this URL (removed): try the next mirror
                bad.append(f"{url}: {exc}")
                continue
            except NetworkError:  # the server reports the file complete, yet it is shorter than pinned
                part.unlink(missing_ok=True)  # resuming from this server can never finish it
                errors.append(f"{url}: the server's copy is shorter than the pinned {remote.size} bytes")
                continue
            os.replace(part, final)
            return final
        errors.append(f"{url}: {error}")
    if bad and not errors:
        raise DataError("; ".join(bad))
    errors += bad
    kept = " (the partial download is kept; rerun to resume)" if part.exists() else ""
    raise NetworkError(
        f"could not download {remote.filename} ({'; '.join(errors) or 'no URL'}){kept}; check the "
        "network, or download it on another machine and pass it with --from PATH"
    )


def _download_from(
    url: str, part: Path, progress: Progress | None, attempts: int, timeout_s: float
) -> str | None:
    """Download ``url`` into ``part``, resuming up to ``attempts`` times; None on success, else why not."""
    reason = "no attempt"
    for attempt in range(1, attempts + 1):
        try:
            _transfer(url, part, progress, timeout_s)
            return None
        except _Interrupted as exc:
            reason = f"interrupted: {exc}"
            log.warning("download from %s interrupted (%s), attempt %d of %d", url, exc, attempt, attempts)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and part.exists():  # Range beyond the end: the .part is whole already
                return None
            return f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, OSError) as exc:
            return str(getattr(exc, "reason", exc))
    return reason
