"""Issue 28 item 11: a registered dataset is checked against its recorded sha256 when loaded.

A valid npz with other energies put in place of the fetched one used to train with exit 0; only
``crmse doctor`` noticed. Now every stage that loads it stops in one line and registers nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from synthetic import cli_main, make_workspace, one_line_error
from test_trust import legit_checkpoint

from crmse_cli.data.dataset import Dataset
from crmse_cli.errors import DataError, NotFoundError
from crmse_cli.registry.store import Registry
from crmse_cli.stages._models import load_dataset
from crmse_cli.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "home")


def _tamper(ws: Workspace) -> Path:
    """Replace the registered file by a valid dataset of the same name with other energies."""
    path = ws.datasets_dir / "ethanol.npz"
    data = Dataset.load(path)
    dataclasses.replace(data, energies=data.energies + 1.0).save(path)
    return path


def test_a_changed_dataset_file_is_refused_on_load(ws: Workspace) -> None:
    reg = Registry.open(ws)
    assert len(load_dataset(reg, "ethanol").energies) == 50  # intact: loads
    path = _tamper(ws)
    with pytest.raises(DataError, match="checksum") as info:
        load_dataset(reg, "ethanol")
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    path.unlink()
    with pytest.raises(NotFoundError, match="missing"):
        load_dataset(reg, "ethanol")
    reg.close()


def test_a_command_on_a_changed_dataset_stops_in_one_line_and_registers_nothing(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = legit_checkpoint(tmp_path / "mine.pt")  # names dataset ethanol
    _tamper(ws)
    argv = ["--home", str(ws.home), "sample", str(model), "--trust-code", "--steps", "2"]
    one_line_error(cli_main(monkeypatch, capsys, *argv), "dataset 'ethanol'", "checksum")
    reg = Registry.open(ws)
    assert reg.list_runs() == []
    reg.close()
