"""`fetch`: rMD17 from a tiny archive built here (official layout), bad inputs, the real mini
archive and andersx files (skipped without ../shared/data), and extended-XYZ import."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import (
    ANDERSX,
    ETHANOL_Z,
    MINI_ARCHIVE,
    make_archive,
    npz_bytes,
    random_frames,
    require_shared,
    rmd17_splits,
    write_andersx,
)

from crmse_cli.data import sources
from crmse_cli.data.dataset import UNITS, Dataset
from crmse_cli.errors import CrmseError, DataError, NotFoundError
from crmse_cli.fileio import sha256_file
from crmse_cli.registry.store import Registry
from crmse_cli.stages.fetch import fetch_rmd17, fetch_xyz
from crmse_cli.units import KCAL_PER_MOL_PER_EV
from crmse_cli.workspace import Workspace

N_FRAMES = 12  # make_archive's default: random_frames(12)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.resolve(tmp_path / "home")


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return make_archive(tmp_path / "rmd17.tar.bz2")


def _registered(ws: Workspace) -> list[Any]:
    reg = Registry.open(ws)
    try:
        return reg.list_datasets()
    finally:
        reg.close()


def _assert_nothing_left(ws: Workspace) -> None:
    assert _registered(ws) == []
    assert list(ws.datasets_dir.iterdir()) == []


# -- the official layout --------------------------------------------------------------------------


def test_fetch_tiny_archive(ws: Workspace, archive: Path) -> None:
    src, splits = random_frames(), rmd17_splits()
    result = fetch_rmd17(ws, "ethanol", from_path=archive)
    assert not result.already
    assert (result.name, result.n_frames, result.n_atoms, result.source) == ("ethanol", N_FRAMES, 9, "file")
    assert result.species == ETHANOL_Z.tolist()
    assert result.splits == {f"{k:02d}": {"train": 4, "test": 3} for k in range(1, 6)}
    assert result.path == ws.datasets_dir / "ethanol.npz"

    data = Dataset.load(result.path)
    np.testing.assert_array_equal(data.species, ETHANOL_Z)
    np.testing.assert_array_equal(data.positions, src["coords"])
    np.testing.assert_array_equal(data.energies, src["energies"])  # kcal/mol in, kcal/mol out
    np.testing.assert_array_equal(data.forces, src["forces"])
    np.testing.assert_array_equal(data.frame_ids, np.arange(N_FRAMES))
    for key, parts in splits.items():
        for part, rows in parts.items():
            np.testing.assert_array_equal(data.splits[key][part], rows)
    assert data.meta["units"] == UNITS
    assert data.meta["old_labels_in_source"] == ["old_indices", "old_energies", "old_forces"]

    [info] = _registered(ws)
    assert info.name == "ethanol" and info.path == str(result.path)
    assert info.sha256 == sha256_file(result.path) == result.sha256
    assert info.units == {"length": "A", "energy": "kcal/mol", "forces": "kcal/mol/A"}
    assert info.meta["kind"] == "rmd17" and info.meta["source_sha256"] == sha256_file(archive)
    assert (info.n_frames, info.n_atoms, info.species) == (N_FRAMES, 9, ETHANOL_Z.tolist())
    assert [p.name for p in ws.datasets_dir.iterdir()] == ["ethanol.npz"]  # no temporary left


def test_refetch_is_a_noop_unless_forced(ws: Workspace, archive: Path) -> None:
    first = fetch_rmd17(ws, "ethanol", from_path=archive)
    stamp = first.path.stat().st_mtime_ns
    again = fetch_rmd17(ws, "ethanol", from_path=archive)
    assert again.already and again.sha256 == first.sha256
    assert first.path.stat().st_mtime_ns == stamp

    forced = fetch_rmd17(ws, "ethanol", from_path=archive, force=True)
    assert not forced.already and forced.sha256 == first.sha256
    assert len(_registered(ws)) == 1

    first.path.unlink()  # a lost dataset file is fetched again, not reported as present
    assert not fetch_rmd17(ws, "ethanol", from_path=archive).already
    assert first.path.is_file()


def test_gzip_and_plain_tar_work_too(ws: Workspace, tmp_path: Path) -> None:
    for mode, name in (("w:gz", "a.tar.gz"), ("w", "a.tar")):
        path = make_archive(tmp_path / name, mode=mode)
        assert fetch_rmd17(ws, "ethanol", from_path=path, force=True).n_frames == N_FRAMES


def test_bare_official_npz_with_splits_folder(ws: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "rmd17"
    (root / "npz_data").mkdir(parents=True)
    (root / "splits").mkdir()
    (root / "npz_data" / "rmd17_ethanol.npz").write_bytes(npz_bytes(random_frames()))
    for key, parts in rmd17_splits().items():
        for part, rows in parts.items():
            np.savetxt(root / "splits" / f"index_{part}_{key}.csv", rows, fmt="%d")
    result = fetch_rmd17(ws, "ethanol", from_path=root)
    assert result.n_frames == N_FRAMES and set(result.splits) == {"01", "02", "03", "04", "05"}


# -- bad inputs: a clear one-line error, nothing registered, no dataset file -------------------------


def _refused(ws: Workspace, path: Path, exc: type[Exception], match: str, molecule: str = "ethanol") -> None:
    with pytest.raises(exc, match=match) as info:
        fetch_rmd17(ws, molecule, from_path=path)
    assert "\n" not in str(info.value)
    _assert_nothing_left(ws)


def test_nonexistent_path(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such file or folder; check the path given to --from"):
        fetch_rmd17(ws, "ethanol", from_path=tmp_path / "nope.tar.bz2")


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "not-an-archive", "empty"])
def test_damaged_archive(ws: Workspace, archive: Path, damage: str) -> None:
    blob = archive.read_bytes()
    if damage == "truncated":
        blob = blob[: len(blob) // 2]
    elif damage == "corrupt":
        mid = len(blob) // 2
        blob = blob[:mid] + bytes(b ^ 0xFF for b in blob[mid : mid + 64]) + blob[mid + 64 :]
    elif damage == "not-an-archive":
        blob = b"<html>404 not found</html>\n" * 10
    else:
        blob = b""
    archive.write_bytes(blob)
    _refused(ws, archive, DataError, "download it again|holds no")


def test_failed_forced_refetch_keeps_the_old_dataset(ws: Workspace, archive: Path, tmp_path: Path) -> None:
    good = fetch_rmd17(ws, "ethanol", from_path=archive)
    bad = tmp_path / "bad.tar.bz2"
    bad.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(DataError):
        fetch_rmd17(ws, "ethanol", from_path=bad, force=True)
    [info] = _registered(ws)
    assert info.sha256 == good.sha256 == sha256_file(good.path)
    assert [p.name for p in ws.datasets_dir.iterdir()] == ["ethanol.npz"]


def test_archive_without_the_molecule(ws: Workspace, tmp_path: Path) -> None:
    benzene = random_frames(species=np.array([6] * 6 + [1] * 6))
    path = make_archive(tmp_path / "a.tar.bz2", molecules={"benzene": benzene})
    _refused(ws, path, DataError, "holds no rmd17/npz_data/rmd17_ethanol.npz")


def test_archive_without_a_split_file(ws: Workspace, tmp_path: Path) -> None:
    splits = rmd17_splits()
    del splits["04"]["test"]
    path = make_archive(tmp_path / "a.tar.bz2", splits=splits)
    _refused(ws, path, DataError, "lacks the split file index_test_04")


def test_split_indices_out_of_range(ws: Workspace, tmp_path: Path) -> None:
    splits = rmd17_splits()
    splits["02"]["train"] = np.array([0, 1, N_FRAMES])
    path = make_archive(tmp_path / "a.tar.bz2", splits=splits)
    _refused(ws, path, DataError, "split 02/train indexes outside")


def test_wrong_formula(ws: Workspace, tmp_path: Path) -> None:
    not_ethanol = np.array([6, 6, 6, 1, 1, 1, 1, 1, 1], dtype=np.uint8)  # C3H6 in ethanol's file
    path = make_archive(tmp_path / "a.tar.bz2", molecules={"ethanol": random_frames(species=not_ethanol)})
    _refused(ws, path, DataError, "not ethanol")


def test_npz_lacking_keys_or_with_nan(ws: Workspace, tmp_path: Path) -> None:
    arrays = random_frames()
    del arrays["forces"]
    _refused(
        ws,
        make_archive(tmp_path / "a.tar.bz2", molecules={"ethanol": arrays}),
        DataError,
        "lacks the rMD17 keys forces",
    )
    arrays = random_frames()
    arrays["energies"][3] = np.nan
    _refused(ws, make_archive(tmp_path / "b.tar.bz2", molecules={"ethanol": arrays}), DataError, "non-finite")


def test_unknown_molecule_and_source(ws: Workspace, archive: Path) -> None:
    with pytest.raises(CrmseError, match="unknown rMD17 molecule 'methanol'; choose one of: aspirin"):
        fetch_rmd17(ws, "methanol", from_path=archive)
    with pytest.raises(CrmseError, match="--source must be one of"):
        fetch_rmd17(ws, "ethanol", source="zenodo")
    with pytest.raises(CrmseError, match="pinned checksums only for"):
        fetch_rmd17(ws, "benzene", source="andersx")


# -- the real data -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.shared
def test_real_mini_archive(ws: Workspace) -> None:
    archive = require_shared(MINI_ARCHIVE)
    result = fetch_rmd17(ws, "ethanol", from_path=archive)
    assert (result.n_frames, result.n_atoms) == (9633, 9)
    assert result.splits == {f"{k:02d}": {"train": 1000, "test": 1000} for k in range(1, 6)}
    with tarfile.open(archive, "r|bz2") as tar:
        wanted = {"rmd17/npz_data/rmd17_ethanol.npz", "rmd17/splits/index_test_03.csv"}
        blobs = {}
        for member in tar:
            if member.name in wanted:
                fh = tar.extractfile(member)
                assert fh is not None
                blobs[member.name] = fh.read()
            if len(blobs) == len(wanted):
                break
    data = Dataset.load(result.path)
    with np.load(io.BytesIO(blobs["rmd17/npz_data/rmd17_ethanol.npz"])) as z:
        for row in (0, 4321, 9632):
            np.testing.assert_array_equal(data.positions[row], z["coords"][row])
            assert data.energies[row] == z["energies"][row]
            np.testing.assert_array_equal(data.forces[row], z["forces"][row])
    test03 = np.loadtxt(io.BytesIO(blobs["rmd17/splits/index_test_03.csv"]), dtype=np.int64)
    np.testing.assert_array_equal(data.splits["03"]["test"], test03)


def _andersx_folder(dst: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the real andersx ethanol files, or synthetic ones whose checksums are pinned here."""
    dst.mkdir()
    if ANDERSX.exists():
        for path in ANDERSX.glob("rmd17_ethanol_*.npz"):
            shutil.copy(path, dst / path.name)
        return dst
    write_andersx(dst, "ethanol")
    for path in dst.glob("rmd17_ethanol_*.npz"):
        monkeypatch.setitem(sources.ANDERSX_SHA256, path.name, sha256_file(path))
    return dst


def test_andersx_folder(ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _andersx_folder(tmp_path / "andersx", monkeypatch)
    result = fetch_rmd17(ws, "ethanol", source="andersx", from_path=folder)
    assert result.splits == {f"{k:02d}": {"train": 1000, "test": 1000} for k in range(1, 6)}
    data = Dataset.load(result.path)
    with np.load(folder / "rmd17_ethanol_train_02.npz") as z:
        rows = data.splits["02"]["train"]
        np.testing.assert_array_equal(data.energies[rows], z["energies"])
        np.testing.assert_array_equal(data.positions[rows], z["coords"])
        np.testing.assert_array_equal(data.frame_ids[rows], z["old_indices"])
    [info] = _registered(ws)
    assert len(info.meta["source_sha256"]) == 10


def test_tampered_andersx_file_is_refused(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _andersx_folder(tmp_path / "andersx", monkeypatch)
    victim = folder / "rmd17_ethanol_test_03.npz"
    with np.load(victim) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["energies"][17] += 0.5  # still a valid rMD17 npz: only the checksum can tell
    np.savez(victim, **arrays)
    match = "rmd17_ethanol_test_03.npz: sha256 .* does not match the pinned"
    with pytest.raises(DataError, match=match) as info:
        fetch_rmd17(ws, "ethanol", source="andersx", from_path=folder)
    assert "\n" not in str(info.value)
    _assert_nothing_left(ws)
    with pytest.raises(DataError, match="does not match the pinned"):  # also when given one file of the set
        fetch_rmd17(ws, "ethanol", from_path=folder / "rmd17_ethanol_train_01.npz")


def test_synthetic_andersx_files_are_not_the_pinned_ones(ws: Workspace, tmp_path: Path) -> None:
    """The checksum check itself: files of the right names but other bytes are refused."""
    folder = write_andersx(tmp_path / "andersx", "ethanol", n=20)
    with pytest.raises(DataError, match="does not match the pinned"):
        fetch_rmd17(ws, "ethanol", source="andersx", from_path=folder)
    _assert_nothing_left(ws)


# -- extended XYZ ---------------------------------------------------------------------------------


def _write_xyz(
    path: Path, n: int = 10, *, energy_scale: float = 1.0, with_forces: bool = True
) -> dict[str, Any]:
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    src = random_frames(n, seed=3)
    frames = []
    for i in range(n):
        atoms = Atoms(numbers=ETHANOL_Z.astype(int), positions=src["coords"][i])
        energy = float(src["energies"][i]) * energy_scale
        forces = src["forces"][i] * energy_scale if with_forces else None
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        frames.append(atoms)
    write(str(path), frames, format="extxyz")
    return src


def test_fetch_xyz_converts_ev_to_kcal_per_mol(ws: Workspace, tmp_path: Path) -> None:
    from scipy import constants

    ev_in_kcal_mol = constants.e * constants.N_A / constants.calorie / 1000  # 23.0605...
    assert KCAL_PER_MOL_PER_EV == pytest.approx(ev_in_kcal_mol, rel=1e-5)
    path = tmp_path / "eth.xyz"
    src = _write_xyz(path, energy_scale=1 / ev_in_kcal_mol)  # the file holds eV and eV/Å
    result = fetch_xyz(ws, path, name="eth-xyz", energy_unit="eV", test_fraction=0.3, split_seed=4)
    data = Dataset.load(result.path)
    np.testing.assert_allclose(data.energies, src["energies"], rtol=1e-6)
    np.testing.assert_allclose(data.forces, src["forces"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(data.positions, src["coords"], atol=1e-8)
    np.testing.assert_array_equal(data.species, ETHANOL_Z)
    train, test = data.split("01")
    assert len(test) == 3 and sorted(np.concatenate([train, test]).tolist()) == list(range(10))
    [info] = _registered(ws)
    assert info.units["energy"] == "kcal/mol" and info.meta["energy_unit_in_file"] == "eV"

    assert fetch_xyz(ws, path, name="eth-xyz", energy_unit="eV", test_fraction=0.3, split_seed=4).already
    with pytest.raises(CrmseError, match="registered already"):
        fetch_xyz(ws, path, name="eth-xyz", energy_unit="kcal/mol", test_fraction=0.3, split_seed=4)
    kcal = fetch_xyz(ws, path, name="eth-xyz", energy_unit="kcal/mol", force=True)
    np.testing.assert_allclose(Dataset.load(kcal.path).energies, src["energies"] / ev_in_kcal_mol, rtol=1e-9)
    assert kcal.splits == {}


def test_fetch_xyz_bad_inputs(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "noforces.xyz"
    _write_xyz(path, n=3, with_forces=False)
    with pytest.raises(DataError, match="frame 0 has no forces"):
        fetch_xyz(ws, path, name="x", energy_unit="eV")
    garbage = tmp_path / "garbage.xyz"
    garbage.write_text("this is not\nan xyz file\n")
    with pytest.raises(DataError, match="not a readable extended-XYZ file"):
        fetch_xyz(ws, garbage, name="x", energy_unit="eV")
    with pytest.raises(NotFoundError):
        fetch_xyz(ws, tmp_path / "missing.xyz", name="x", energy_unit="eV")
    with pytest.raises(CrmseError, match="not a valid dataset name"):
        fetch_xyz(ws, garbage, name="../evil", energy_unit="eV")
    _assert_nothing_left(ws)
