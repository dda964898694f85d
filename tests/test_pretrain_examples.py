"""Every examples/*.toml pretrain config loads, matches its named preset, and trains on a small case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crmse_cli.config import load_config
from crmse_cli.data.dataset import Dataset
from crmse_cli.stages.pretrain import PRESETS, preset_config
from crmse_cli.train.data import FrameSet
from crmse_cli.train.pretrain import PretrainConfig, PretrainTrainer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FILES = {"quick": "ethanol", "default": "ethanol", "aspirin": "aspirin"}


def small_dataset(path: Path, name: str, n_train: int = 40, n_test: int = 10) -> Dataset:
    with np.load(path) as z:
        n = n_train + n_test
        return Dataset(
            name=name,
            species=z["nuclear_charges"].astype(np.int64),
            positions=z["coords"][:n],
            energies=z["energies"][:n],
            forces=z["forces"][:n],
            frame_ids=np.arange(n),
            splits={"01": {"train": np.arange(n_train), "test": np.arange(n_train, n)}},
        )


@pytest.mark.parametrize("example", sorted(FILES))
def test_example_matches_its_preset(example: str) -> None:
    assert example in PRESETS
    assert load_config(PretrainConfig, EXAMPLES / f"{example}.toml") == preset_config(example)


def test_documented_defaults() -> None:
    default = load_config(PretrainConfig, EXAMPLES / "default.toml")
    assert default == PretrainConfig(n_train=900)  # the file spells out the library's defaults
    assert (default.n_train, default.n_val, default.val_fraction) == (900, 100, None)
    assert (default.max_minutes, default.early_stopping_patience) == (None, 0)  # no clock, no early stop
    for name in PRESETS:  # reproducible on any machine: no preset sets a wall-clock budget
        assert preset_config(name).max_minutes is None, name
    quick = preset_config("quick")
    assert quick.max_epochs <= 200
    assert quick.model.features < default.model.features


@pytest.mark.parametrize("example", sorted(FILES))
def test_example_trains_on_a_small_case(example: str, ethanol_npz: Path, aspirin_npz: Path) -> None:
    npz = {"ethanol": ethanol_npz, "aspirin": aspirin_npz}[FILES[example]]
    data = small_dataset(npz, FILES[example])
    cfg = load_config(PretrainConfig, EXAMPLES / f"{example}.toml", n_train=30, n_val=10, max_epochs=1)
    trainer = PretrainTrainer.create(cfg, data)
    first = trainer.validate().loss
    records = list(trainer.epochs())
    assert len(records) == 1 and trainer.stop_reason == "max_epochs"
    assert records[0].val_loss < first
    errors = trainer.test(FrameSet.from_dataset(data, data.split("01")[1]))
    assert errors.n_frames == 10 and np.isfinite(errors.force_mae)
