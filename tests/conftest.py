"""Shared test setup: repo on sys.path, one torch thread, rMD17 data (real when present, else synthetic).

Tests run on a clean clone without ``../shared``: the rMD17 fixtures fall back to synthetic files
in rMD17's own layouts (the official ``rmd17.tar.bz2`` archive, andersx's per-split npz files),
built here from one real geometry per molecule and an elastic-network potential. Only tests that
check properties of the real data itself skip without it (marked ``shared``).

``CRMSE_SHARED_DATA`` points the tests at another data folder; a missing one shows what a clean
clone sees: ``CRMSE_SHARED_DATA=/nonexistent pytest -rs``.
"""

from __future__ import annotations

import io
import os
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("CRMSE_THREADS", "1")  # the CLI's torch threads, in this process and its children


def pytest_configure(config: pytest.Config) -> None:
    """A test that names no workspace gets a fresh default one, never the user's.

    The default workspace is ``$XDG_DATA_HOME/crmse``; each test process (each ``-n`` worker of
    pytest-xdist) points ``XDG_DATA_HOME`` at a folder of its own, so no test reads or writes
    ``~/.local/share/crmse`` and no two workers share one.
    """
    import tempfile

    os.environ["XDG_DATA_HOME"] = _DEFAULTS.setdefault("xdg", tempfile.mkdtemp(prefix="crmse-test-xdg."))


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    if "xdg" in _DEFAULTS:
        shutil.rmtree(_DEFAULTS.pop("xdg"), ignore_errors=True)


_DEFAULTS: dict[str, str] = {}

try:  # torch is a dependency, but keep the registry tests importable without it
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

SHARED_DATA = Path(os.environ.get("CRMSE_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve()
ANDERSX = SHARED_DATA / "rmd17" / "andersx-rmd17-npz"
MINI_ARCHIVE = SHARED_DATA / "rmd17-mini.tar.bz2"


def require_shared(path: Path = SHARED_DATA) -> Path:
    """Skip the calling test with a clear reason when the shared rMD17 data is absent."""
    if not path.exists():
        pytest.skip(f"real rMD17 data not found at {path} (../shared/data beside the repo)")
    return path


# -- synthetic rMD17 ------------------------------------------------------------------------------

# First frame of rMD17's ethanol and aspirin (andersx train_01, CC0), centred, Å, in rMD17's atom order.
ETHANOL_Z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1], dtype=np.uint8)  # C2H6O, as rMD17 orders it
ETHANOL_X = np.array([
    [0.1851, -0.5252, -0.0812], [-0.6265, 0.6498, 0.4844], [1.4276, -0.2058, -0.6024],
    [0.5263, -1.2370, 0.7498], [-0.5758, -0.9598, -0.7813], [-1.3926, 0.2623, 1.1845],
    [0.1519, 1.3174, 0.9551], [-1.1141, 1.1372, -0.3776], [1.4181, -0.4388, -1.5313],
])  # fmt: skip
ASPIRIN_Z = np.array([6, 6, 6, 6, 6, 6, 6, 8, 8, 8, 6, 6, 8, 1, 1, 1, 1, 1, 1, 1, 1], dtype=np.uint8)
ASPIRIN_X = np.array([
    [1.9076, -1.4411, 0.0088], [1.1110, 1.0377, -0.6350], [2.8429, -0.6915, -0.7082],
    [2.3514, 0.4742, -1.1757], [-2.9003, 2.2080, 0.4276], [0.5403, -1.0798, 0.3170],
    [0.2372, 0.2683, 0.0362], [-1.4843, -1.8754, 1.4233], [-1.7793, 1.1361, -1.4343],
    [0.1112, -3.3065, 0.5538], [-0.3964, -2.0420, 0.8910], [-1.8182, 1.3998, -0.2799],
    [-0.9254, 0.8647, 0.6288], [-0.2807, -3.9892, 1.0742], [2.2646, -2.3492, 0.4656],
    [0.8244, 2.0421, -0.8953], [3.8121, -1.1235, -0.9370], [3.0280, 1.2311, -1.6553],
    [-2.7183, 3.2176, 0.5789], [-3.8579, 2.3138, -0.1338], [-2.8699, 1.7046, 1.4491],
])  # fmt: skip
MOLECULES = {"ethanol": (ETHANOL_Z, ETHANOL_X, -97075.0), "aspirin": (ASPIRIN_Z, ASPIRIN_X, -406280.0)}
KT_500K = 0.0019872041 * 500.0  # kcal/mol
SOFTEST_MODE = 15.0
"""kcal/mol/Å²: the synthetic frames' softer normal modes are sampled as if this stiff. Aspirin's
elastic network has torsion-like modes down to 0.66, whose 500 K amplitudes (over 1 Å) would give
distorted frames with energies spread by hundreds of kcal/mol; ethanol's softest is 19.5 (unchanged)."""


def _network(species: np.ndarray, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (P, 2), rest lengths (P,) Å and stiffnesses (P,) kcal/mol/Å² of an elastic network."""
    radius = {1: 0.31, 6: 0.76, 8: 0.66}
    i, j = np.triu_indices(len(species), k=1)
    r0 = np.linalg.norm(x0[i] - x0[j], axis=-1)
    bonded = r0 < 1.25 * np.array(
        [radius[int(species[a])] + radius[int(species[b])] for a, b in zip(i, j, strict=True)]
    )
    k = np.where(bonded, 600.0, 40.0 * np.exp(-(r0 - 2.5).clip(0.0)))
    return i, j, r0, k


def elastic_energy_forces(
    species: np.ndarray, x0: np.ndarray, x: np.ndarray, e0: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Energies (F,) kcal/mol and forces (F, N, 3) kcal/mol/Å of U = e0 + sum_p k_p/2 (r_p - r0_p)²."""
    i, j, r0, k = _network(species, x0)
    d = x[:, i] - x[:, j]
    r = np.linalg.norm(d, axis=-1)
    energies = e0 + 0.5 * (k * (r - r0) ** 2).sum(axis=1)
    pull = (k * (r - r0) / r)[..., None] * d  # dU/dx_i of each pair
    forces = np.zeros_like(x)
    np.add.at(forces, (slice(None), i), -pull)
    np.add.at(forces, (slice(None), j), pull)
    return energies, forces


def synthetic_frames(molecule: str = "ethanol", n: int = 400, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` frames of ``molecule`` in rMD17's npz keys: Boltzmann samples at 500 K of the elastic
    network's harmonic approximation around one real geometry (modes softer than ``SOFTEST_MODE``
    sampled as that stiff), labelled with the network's exact energies and forces (consistent,
    smooth, learnable). ``old_*`` are the labels plus noise."""
    species, x0, e0 = MOLECULES[molecule]
    i, j, _, k = _network(species, x0)
    n_atoms = len(species)
    hess = np.zeros((n_atoms, 3, n_atoms, 3))
    u = x0[i] - x0[j]
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    for a, b, kp, up in zip(i, j, k, u, strict=True):
        block = kp * np.outer(up, up)
        hess[a, :, a] += block
        hess[b, :, b] += block
        hess[a, :, b] -= block
        hess[b, :, a] -= block
    lam, vec = np.linalg.eigh(hess.reshape(3 * n_atoms, 3 * n_atoms))
    keep = lam > 1e-6 * lam.max()  # drop the six rigid-body modes
    rng = np.random.default_rng(seed)
    amp = rng.standard_normal((n, int(keep.sum()))) * np.sqrt(KT_500K / np.maximum(lam[keep], SOFTEST_MODE))
    x = x0 + (amp @ vec[:, keep].T).reshape(n, n_atoms, 3)
    energies, forces = elastic_energy_forces(species, x0, x, e0)
    return {
        "nuclear_charges": species,
        "coords": x,
        "energies": energies,
        "forces": forces,
        "old_indices": np.arange(n) * 7 + 3,
        "old_energies": energies + 300.0 + rng.normal(size=n),
        "old_forces": forces + rng.normal(size=forces.shape),
    }


def random_frames(n: int = 12, species: np.ndarray = ETHANOL_Z, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` frames of random numbers in rMD17's npz keys (for format tests, not physics)."""
    rng = np.random.default_rng(seed)
    n_atoms = len(species)
    return {
        "nuclear_charges": species,
        "coords": rng.normal(size=(n, n_atoms, 3)),
        "energies": -97000.0 + rng.normal(size=n),
        "forces": 10 * rng.normal(size=(n, n_atoms, 3)),
        "old_indices": np.arange(n) * 37 + 5,
        "old_energies": -96000.0 + rng.normal(size=n),
        "old_forces": rng.normal(size=(n, n_atoms, 3)),
    }


def rmd17_splits(n: int = 12, n_train: int = 4, n_test: int = 3) -> dict[str, dict[str, np.ndarray]]:
    """Five splits over ``n`` rows, disjoint within a split, as rMD17's ``index_{train,test}_0k.csv``."""
    out = {}
    for k in range(1, 6):
        order = np.random.default_rng(k).permutation(n)
        out[f"{k:02d}"] = {
            "train": np.sort(order[:n_train]),
            "test": np.sort(order[n_train : n_train + n_test]),
        }
    return out


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def make_archive(
    path: Path,
    molecules: dict[str, dict[str, np.ndarray]] | None = None,
    splits: dict[str, dict[str, np.ndarray]] | None = None,
    mode: str = "w:bz2",
) -> Path:
    """A tar in the official ``rmd17.tar.bz2`` layout; the splits are written as one index per line.

    Defaults: 12 random ethanol frames with :func:`rmd17_splits` (a format test's archive)."""
    molecules = {"ethanol": random_frames()} if molecules is None else molecules
    splits = rmd17_splits() if splits is None else splits
    members = {f"rmd17/npz_data/rmd17_{mol}.npz": npz_bytes(a) for mol, a in molecules.items()}
    for key, parts in splits.items():
        for part, rows in parts.items():
            members[f"rmd17/splits/index_{part}_{key}.csv"] = "".join(f"{i}\n" for i in rows).encode()
    with tarfile.open(path, mode) as tar:  # type: ignore[call-overload]
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


# Sizes of the synthetic archive the stage, report and CLI tests train and sample on.
SYNTHETIC_FRAMES, SYNTHETIC_TRAIN, SYNTHETIC_TEST = 400, 120, 80


def make_synthetic_archive(path: Path) -> Path:
    """An ``rmd17.tar.bz2`` with 400 physical ethanol frames; each split has 120 train and 80 test rows."""
    splits = rmd17_splits(SYNTHETIC_FRAMES, SYNTHETIC_TRAIN, SYNTHETIC_TEST)
    return make_archive(path, {"ethanol": synthetic_frames("ethanol", SYNTHETIC_FRAMES)}, splits)


def write_andersx(folder: Path, molecule: str, n: int = 1000) -> Path:
    """andersx's layout: ``rmd17_<mol>_{train,test}_0k.npz`` of ``n`` synthetic frames each."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = synthetic_frames(molecule, 10 * n)
    for s, (part, k) in enumerate((p, k) for p in ("train", "test") for k in range(1, 6)):
        rows = slice(s * n, (s + 1) * n)
        arrays = {key: (a if key == "nuclear_charges" else a[rows]) for key, a in frames.items()}
        np.savez(folder / f"rmd17_{molecule}_{part}_0{k}.npz", **arrays)
    return folder


@pytest.fixture(scope="session")
def synthetic_andersx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder in andersx's layout with synthetic ethanol and aspirin (1000 frames per file)."""
    folder = tmp_path_factory.mktemp("andersx")
    for molecule in MOLECULES:
        write_andersx(folder, molecule)
    return folder


@pytest.fixture(scope="session")
def synthetic_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """See :func:`make_synthetic_archive`."""
    return make_synthetic_archive(tmp_path_factory.mktemp("rmd17") / "rmd17.tar.bz2")


def _real_or(name: str, folder: Path) -> Path:
    real = ANDERSX / name
    return real if real.exists() else folder / name


@pytest.fixture
def shared_data() -> Path:
    return require_shared()


@pytest.fixture
def ethanol_npz(synthetic_andersx: Path) -> Path:
    """andersx's ethanol train_01 file: the real one when present, else a synthetic one."""
    return _real_or("rmd17_ethanol_train_01.npz", synthetic_andersx)


@pytest.fixture
def aspirin_npz(synthetic_andersx: Path) -> Path:
    """andersx's aspirin train_01 file: the real one when present, else a synthetic one."""
    return _real_or("rmd17_aspirin_train_01.npz", synthetic_andersx)


@pytest.fixture
def mini_archive() -> Path:
    return require_shared(MINI_ARCHIVE)


# -- registry backends ----------------------------------------------------------------------------

PG_URL_ENV = "CRMSE_TEST_PG_URL"
"""A PostgreSQL server URL (``postgresql+psycopg://user@host:port/postgres``) the tests may create
databases on (`.ci/postgres.sh` starts a server and sets it). Unset: the session starts a throwaway
server from the PostgreSQL binaries on the machine (tests/pg_server.py); without them the
PostgreSQL tests skip, naming what to install."""


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of a PostgreSQL server for this session: ``CRMSE_TEST_PG_URL``, else a throwaway one.

    The throwaway server starts when the first PostgreSQL test asks for it and stops at the end of
    the session. Skips (saying what to install) when there is neither.
    """
    base = os.environ.get(PG_URL_ENV)
    if base:
        yield base
        return
    import pg_server as throwaway

    try:
        server = throwaway.start()
    except throwaway.NoServer as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


def fresh_pg_database(base: str) -> tuple[str, object]:
    """(URL of a new empty database on the server at ``base``, a callable that drops it)."""
    import secrets

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

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
    url, drop = fresh_pg_database(request.getfixturevalue("pg_server"))
    yield url
    drop()  # type: ignore[operator]
