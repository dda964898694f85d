"""Extended-XYZ input crmse cannot model is refused in one line, and nothing is registered.

A periodic cell (``pbc`` true on any axis) or a file mixing compositions is refused by
`fetch xyz`, `mace import` and `regularize --from-model --data` alike (all read through
crmse_cli/data/xyz.py). Files written by ASE under tmp_path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_cli import crmse

ETHANOL = "CH3CH2OH"


def _frames(n: int, *, pbc: tuple[bool, bool, bool] = (False, False, False), mixed: bool = False) -> list:
    """ASE frames of ethanol (perturbed) with energy and forces; the last one water when ``mixed``."""
    from ase.build import molecule
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        atoms = molecule("H2O" if mixed and i == n - 1 else ETHANOL)
        atoms.positions += 0.02 * rng.standard_normal(atoms.positions.shape)
        if any(pbc):
            atoms.cell = [12.0, 12.0, 12.0]
        atoms.pbc = pbc
        atoms.calc = SinglePointCalculator(
            atoms, energy=-1000.0 + rng.standard_normal(), forces=rng.standard_normal((len(atoms), 3))
        )
        frames.append(atoms)
    return frames


def _write(path: Path, frames: list) -> Path:
    from ase.io import write

    write(str(path), frames, format="extxyz")
    return path


def _nothing_registered(home: Path) -> None:
    for listing in ("datasets", "runs"):
        proc = crmse(home, "--json", listing)
        assert proc.returncode == 0 and json.loads(proc.stdout) == [], (listing, proc.stdout)


def _refused(proc, *must: str) -> str:  # type: ignore[no-untyped-def]
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for text in must:
        assert text in lines[0], lines[0]
    return lines[0]


def test_read_xyz_refuses_a_periodic_frame_and_mixed_compositions(tmp_path: Path) -> None:
    from crmse_cli.data.xyz import read_xyz
    from crmse_cli.errors import DataError

    good = _write(tmp_path / "good.xyz", _frames(3))
    assert read_xyz(good, name="g", energy_unit="eV").positions.shape == (3, 9, 3)
    for pbc in [(True, True, True), (False, False, True)]:
        path = _write(tmp_path / "box.xyz", _frames(3, pbc=pbc))
        with pytest.raises(DataError, match="periodic .*not supported"):
            read_xyz(path, name="b", energy_unit="eV")
    mixed = _write(tmp_path / "mixed.xyz", _frames(3, mixed=True))
    with pytest.raises(DataError, match=r"frame 2 is H2O, frame 0 is C2H6O; files mixing compositions"):
        read_xyz(mixed, name="m", energy_unit="eV")


def test_fetch_xyz_refuses_a_periodic_box_and_a_mixed_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    box = _write(tmp_path / "box.xyz", _frames(4, pbc=(True, True, True)))
    line = _refused(crmse(home, "fetch", "xyz", str(box), "--name", "box", "--energy-unit", "eV"), "periodic")
    assert "12 x 12 x 12 Å" in line and "pbc" in line
    mixed = _write(tmp_path / "mixed.xyz", _frames(4, mixed=True))
    _refused(
        crmse(home, "fetch", "xyz", str(mixed), "--name", "m", "--energy-unit", "eV"), "mixing compositions"
    )
    _nothing_registered(home)


@pytest.mark.slow
def test_mace_import_and_regularize_from_model_refuse_a_periodic_file(tmp_path: Path) -> None:
    pytest.importorskip("mace", reason="mace-torch is not installed (the optional 'mace' extra)")
    import torch
    from test_mace import small_mace

    model_path = tmp_path / "my.model"
    torch.save(small_mace(), model_path)
    box = _write(tmp_path / "train.xyz", _frames(6, pbc=(True, True, True)))
    home = tmp_path / "home"
    proc = crmse(home, "mace", "import", str(model_path), "--data", str(box), "--trust-code")
    _refused(proc, "periodic")
    proc = crmse(home, "regularize", "--from-model", str(model_path), "--data", str(box), "--trust-code")
    _refused(proc, "periodic")
    _nothing_registered(home)
