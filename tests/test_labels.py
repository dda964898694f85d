"""The original MD17 labels: kept by fetch, trained on by `crmse pretrain --labels md17`."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from crmse_cli.data.dataset import Dataset
from crmse_cli.errors import CrmseError, DataError
from crmse_cli.model import ModelConfig
from crmse_cli.workspace import Workspace

CFG_KW = dict(model=ModelConfig(features=8, layers=1, n_rbf=8), n_train=4, val_fraction=0.25, batch_size=4,
              max_epochs=2, max_minutes=None)  # fmt: skip


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    from test_fetch import make_archive

    from crmse_cli.stages.fetch import fetch_rmd17

    monkeypatch.delenv("CRMSE_DB_URL", raising=False)
    monkeypatch.setenv("CRMSE_NO_PROGRESS", "1")
    ws = Workspace.resolve(tmp_path / "home")
    fetch_rmd17(ws, "ethanol", from_path=make_archive(tmp_path / "rmd17.tar.bz2"))
    return ws


def test_fetch_keeps_the_md17_labels_beside_the_rmd17_ones(ws: Workspace) -> None:
    from conftest import random_frames as _frames

    src = _frames()
    data = Dataset.load(ws.datasets_dir / "ethanol.npz")
    assert data.has_md17_labels and data.meta["old_labels_kept"] is True
    np.testing.assert_array_equal(data.old_energies, src["old_energies"])
    np.testing.assert_array_equal(data.old_forces, src["old_forces"])
    np.testing.assert_array_equal(data.energies, src["energies"])  # the rMD17 labels stay the labels
    md17 = data.with_md17_labels()
    assert md17.name == "ethanol-md17" and md17.meta["labels"] == "md17" and not md17.has_md17_labels
    np.testing.assert_array_equal(md17.energies, src["old_energies"])
    np.testing.assert_array_equal(md17.positions, data.positions)
    assert md17.splits["01"]["train"].tolist() == data.splits["01"]["train"].tolist()


def test_pretrain_labels_md17_trains_on_the_old_labels(ws: Workspace) -> None:
    from conftest import random_frames as _frames

    from crmse_cli.model.checkpoint import load_checkpoint
    from crmse_cli.model.forces import energy_and_forces
    from crmse_cli.registry.store import Registry
    from crmse_cli.stages.pretrain import pretrain
    from crmse_cli.train.pretrain import PretrainConfig

    src = _frames()
    res = pretrain(ws, dataset="ethanol", config=PretrainConfig(**CFG_KW), labels="md17", progress=False)
    reg = Registry.open(ws)
    run = reg.get_run(res.run_id)
    assert run.dataset == "ethanol-md17" and run.config["labels"] == "md17"
    info = reg.get_dataset("ethanol-md17")
    assert (
        info.meta["labels_from"] == "ethanol"
        and info.meta["labels_from_sha256"] == reg.get_dataset("ethanol").sha256
    )
    trained_on = Dataset.load(info.path)
    np.testing.assert_array_equal(trained_on.energies, src["old_energies"])
    np.testing.assert_array_equal(trained_on.forces, src["old_forces"])
    assert not np.allclose(trained_on.energies, src["energies"])
    # The model learnt the MD17 energy scale (-96000 here), not rMD17's (-97000).
    potential, _ = load_checkpoint(res.checkpoint, dtype="float64")
    e, _ = energy_and_forces(
        potential, torch.as_tensor(src["coords"]), torch.as_tensor(src["nuclear_charges"])
    )
    assert np.abs(e.numpy() - src["old_energies"]).mean() < 50.0
    assert np.abs(e.numpy() - src["energies"]).mean() > 500.0
    # Asking again reuses the derived dataset; the default labels are the dataset's own.
    again = pretrain(ws, dataset="ethanol", config=PretrainConfig(**CFG_KW), labels="md17", progress=False)
    assert reg.get_run(again.run_id).dataset == "ethanol-md17"
    plain = pretrain(ws, dataset="ethanol", config=PretrainConfig(**CFG_KW), progress=False)
    assert reg.get_run(plain.run_id).config["labels"] == "rmd17"
    with pytest.raises(CrmseError, match="--labels must be one of"):
        pretrain(ws, dataset="ethanol", config=PretrainConfig(**CFG_KW), labels="dft", progress=False)


def test_md17_labels_absent_give_one_clear_error(tmp_path: Path) -> None:
    data = Dataset(
        name="x", species=np.array([1, 1]), positions=np.zeros((2, 2, 3)) + np.arange(2)[None, :, None],
        energies=np.zeros(2), forces=np.zeros((2, 2, 3)), frame_ids=np.arange(2),
    )  # fmt: skip
    with pytest.raises(DataError, match="no original MD17 labels"):
        data.with_md17_labels()
    with pytest.raises(DataError, match="come together"):
        Dataset(**{**data.__dict__, "old_energies": np.zeros(2)})
    data.save(tmp_path / "x.npz")
    assert not Dataset.load(tmp_path / "x.npz").has_md17_labels


@pytest.mark.shared
def test_md17_labels_of_the_real_archive_are_kcal_per_mol(mini_archive: Path) -> None:
    """The npz's old_* arrays use rMD17's units: same energy scale, same force scale, ~540 K virial."""
    from crmse_cli.analysis.stats import virial_temperature
    from crmse_cli.data.rmd17 import read_archive, to_dataset

    data = to_dataset("ethanol", read_archive(mini_archive, "ethanol"), {})
    assert data.old_energies is not None and data.old_forces is not None
    assert abs(np.mean(data.old_energies) - np.mean(data.energies)) < 200.0  # ~-97,200 vs ~-97,080 kcal/mol
    ratio = np.sqrt((data.old_forces**2).mean() / (data.forces**2).mean())
    assert 0.9 < ratio < 1.1  # eV/Å would be 23x smaller
    assert 450.0 < virial_temperature(data.positions, data.old_forces) < 650.0
    with tarfile.open(mini_archive) as tar:
        member = next(m for m in tar if m.name.endswith("rmd17_ethanol.npz"))
        blob = tar.extractfile(member).read()  # type: ignore[union-attr]
    with np.load(io.BytesIO(blob)) as z:
        np.testing.assert_array_equal(data.old_forces, z["old_forces"])
