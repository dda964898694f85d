"""Opt-in tuning of glibc's malloc for the potential's allocation pattern.

Every force evaluation allocates and frees the same few megabyte-sized tensors. By default glibc
serves blocks above a (dynamic) threshold with fresh ``mmap`` pages and returns them to the OS
on free, so every evaluation pays a page fault per 4 KiB touched; in the sandboxed VMs this
project runs on that costs ~2 µs a page and made force evaluation 25-50% slower (measured with
benchmarks/bench_model.py). Raising the mmap threshold and never trimming the heap keeps those
pages mapped and reuses them. The price is that the process keeps its peak heap size.

This is process-wide, so it is never done implicitly: entry points (the CLI, benchmarks, long
sampling jobs) call ``tune_allocator()`` once at start-up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc caps the mmap threshold at 32 MiB on 64-bit (HEAP_MAX_SIZE / 2).
MAX_MMAP_THRESHOLD = 32 * 1024 * 1024


def tune_allocator(mmap_threshold_bytes: int = MAX_MMAP_THRESHOLD) -> bool:
    """Keep freed tensor memory mapped for reuse (glibc only). Returns whether it was applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, int(min(mmap_threshold_bytes, MAX_MMAP_THRESHOLD))))
    # 2^31 - 1: the largest int mallopt takes; in practice "never trim the heap".
    ok = bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)) and ok
    logger.debug("glibc malloc tuned for tensor reuse: %s", ok)
    return ok
