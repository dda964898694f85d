"""Shared test setup: repo on sys.path, one torch thread, the shared rMD17 data when present."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

os.environ.setdefault("OMP_NUM_THREADS", "1")

try:  # torch is a dependency, but keep the registry tests importable without it
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
ANDERSX = SHARED_DATA / "rmd17" / "andersx-rmd17-npz"
MINI_ARCHIVE = SHARED_DATA / "rmd17-mini.tar.bz2"


def require_shared(path: Path = SHARED_DATA) -> Path:
    """Skip the calling test with a clear reason when the shared rMD17 data is absent."""
    if not path.exists():
        pytest.skip(f"real rMD17 data not found at {path} (../shared/data beside the repo)")
    return path


@pytest.fixture
def shared_data() -> Path:
    return require_shared()


@pytest.fixture
def ethanol_npz() -> Path:
    return require_shared(ANDERSX / "rmd17_ethanol_train_01.npz")


@pytest.fixture
def aspirin_npz() -> Path:
    return require_shared(ANDERSX / "rmd17_aspirin_train_01.npz")


@pytest.fixture
def mini_archive() -> Path:
    return require_shared(MINI_ARCHIVE)
