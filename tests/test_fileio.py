"""Atomic writes: all or nothing, and the file mode of an ordinary write."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from crmse_cli.fileio import atomic_write, sha256_file


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    atomic_write(path, lambda fh: fh.write(b"first"))
    with pytest.raises(RuntimeError):

        def broken(fh: object) -> None:
            fh.write(b"partial")  # type: ignore[attr-defined]
            raise RuntimeError("disk full")

        atomic_write(path, broken)
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]  # no temporary file left
    assert len(sha256_file(path)) == 64


def test_atomic_write_gives_the_umask_mode_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "report.html", lambda fh: fh.write(b"<html></html>"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o644
