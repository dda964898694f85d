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


# -- registry backends ----------------------------------------------------------------------------

PG_URL_ENV = "CRMSE_TEST_PG_URL"
"""A PostgreSQL server URL (``postgresql+psycopg://user@host:port/postgres``) the tests may create
databases on; `.ci/postgres.sh` starts a throwaway server and sets it. Unset: PostgreSQL tests skip."""


def fresh_pg_database() -> tuple[str, object]:
    """(URL of a new empty PostgreSQL database, a callable that drops it); skips without a server."""
    import secrets

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = os.environ.get(PG_URL_ENV)
    if not base:
        pytest.skip(f"no PostgreSQL server: set {PG_URL_ENV} (source .ci/postgres.sh && pg_start)")
    name = f"crmse_test_{secrets.token_hex(6)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # FILE_COPY (PostgreSQL 15+) is the faster way on a tiny template
        try:
            conn.execute(text(f'CREATE DATABASE "{name}" STRATEGY = FILE_COPY'))
        except Exception:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(base).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        eng = create_engine(base, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        eng.dispose()

    return url, drop


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path):  # noqa: ANN201
    """A fresh registry URL on each backend: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crmse.db'}"
        return
    url, drop = fresh_pg_database()
    yield url
    drop()  # type: ignore[operator]
