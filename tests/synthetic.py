"""A synthetic workspace for fault tests: ethanol-shaped frames and a tiny pretrained model.

No ../shared data needed: 50 noisy copies of one ethanol geometry with made-up energies and
forces (nothing here is physics; the tests exercise bookkeeping), split 01 = 30 train / 10 test,
10 reference frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crmse_cli.data.dataset import Dataset
from crmse_cli.fileio import sha256_file
from crmse_cli.model import ModelConfig
from crmse_cli.registry.store import Registry
from crmse_cli.train.pretrain import PretrainConfig
from crmse_cli.workspace import Workspace

SPECIES = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1], dtype=np.int64)
GEOMETRY_A = np.array(
    [[0.0, 0.0, 0.0], [1.52, 0.0, 0.0], [2.0, 1.35, 0.0], [-0.36, 1.03, 0.0], [-0.36, -0.51, 0.89],
     [-0.36, -0.51, -0.89], [1.88, -0.51, 0.89], [1.88, -0.51, -0.89], [2.96, 1.30, 0.0]]
)  # fmt: skip
N_FRAMES = 50
TINY = PretrainConfig(
    model=ModelConfig(features=8, layers=1, n_rbf=4),
    n_train=20,
    val_fraction=0.2,
    batch_size=10,
    max_epochs=2,
    max_minutes=None,
    ema_decay=0.0,
)


def make_workspace(home: Path) -> Workspace:
    """A workspace at ``home`` with the synthetic dataset ``ethanol`` registered."""
    ws = Workspace(home).ensure()
    rng = np.random.default_rng(0)
    data = Dataset(
        name="ethanol",
        species=SPECIES,
        positions=GEOMETRY_A + 0.05 * rng.normal(size=(N_FRAMES, 9, 3)),
        energies=-97000.0 + rng.normal(size=N_FRAMES),
        forces=10.0 * rng.normal(size=(N_FRAMES, 9, 3)),
        frame_ids=np.arange(N_FRAMES),
        splits={"01": {"train": np.arange(30), "test": np.arange(30, 40)}},
    )
    path = ws.datasets_dir / "ethanol.npz"
    data.save(path)
    reg = Registry.open(ws)
    reg.add_dataset(
        name="ethanol", source="synthetic", sha256=sha256_file(path), path=str(path), n_frames=N_FRAMES,
        n_atoms=9, species=SPECIES.tolist(), units={"energy": "kcal/mol"},
        splits={"01": {"train": 30, "test": 10}}, meta={},
    )  # fmt: skip
    reg.close()
    return ws


def tiny_pretrain(ws: Workspace, name: str = "tiny", **changes: object) -> str:
    """Pretrain the tiny model for 2 epochs; return the run id."""
    import dataclasses

    from crmse_cli.stages.pretrain import pretrain

    cfg = dataclasses.replace(TINY, **changes)  # type: ignore[arg-type]
    return pretrain(ws, dataset="ethanol", split="01", config=cfg, name=name, progress=False).run_id


def cli_main(monkeypatch: Any, capsys: Any, *argv: str) -> tuple[int, str, str]:
    """Run ``crmse ARGV`` through the console entry in this process, without the seconds of
    interpreter and torch start-up a subprocess costs; return (exit code, stdout, stderr)."""
    import signal
    import sys

    from crmse_cli.cli import app as app_module

    monkeypatch.setattr(sys, "argv", ["crmse", *argv])
    monkeypatch.setenv("CRMSE_NO_PROGRESS", "1")
    monkeypatch.setenv("COLUMNS", "300")
    previous = signal.getsignal(signal.SIGTERM)
    code: int | str | None = 0
    try:
        app_module.main()
    except SystemExit as done:
        code = done.code
    finally:
        signal.signal(signal.SIGTERM, previous)
    captured = capsys.readouterr()
    assert not isinstance(code, str), code
    return int(code or 0), captured.out, captured.err


def one_line_error(result: tuple[int, str, str], *must: str) -> str:
    """The single ``error: ...`` line of a failed command, containing every string of ``must``."""
    code, _, err = result
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error: "), err
    for text in must:
        assert text in lines[0], lines[0]
    return lines[0]


def regularize_cut_at(
    ws: Workspace, monkeypatch: Any, source: str, cfg: Any, *, name: str, update: int
) -> None:
    """``regularize(ws, source, cfg, name=name)`` stopped by Ctrl-C at update ``update`` (the run is
    left ``interrupted`` and resumable)."""
    import pytest

    from crmse_cli.stages.regularize import regularize
    from crmse_cli.train import contrastive

    real_step = contrastive.ContrastiveTrainer.step
    calls = {"n": 0}

    def interrupting_step(self):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == update:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(contrastive.ContrastiveTrainer, "step", interrupting_step)
    with pytest.raises(KeyboardInterrupt):
        regularize(ws, source, cfg, name=name)
    monkeypatch.setattr(contrastive.ContrastiveTrainer, "step", real_step)


def interrupted_regularize(ws: Workspace, monkeypatch: Any, name: str = "reg-cut") -> Any:
    """A tiny regularize run of the ``tiny`` pretrain run, stopped by Ctrl-C at its second update;
    returns its RegularizeConfig."""
    from crmse_cli.stages.regularize import RegularizeConfig
    from crmse_cli.train.contrastive import ContrastiveConfig

    c = ContrastiveConfig(n_chains=2, steps_per_update=2, n_updates=3, batch_size=4, warmup_updates=1, seed=1)
    cfg = RegularizeConfig(contrastive=c, val_every=1, checkpoint_every=1, chains_every=2)
    regularize_cut_at(ws, monkeypatch, "tiny", cfg, name=name, update=2)
    return cfg
