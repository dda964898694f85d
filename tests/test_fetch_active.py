"""`crmse fetch active` (issue 29 item 5): picks, xTB labels, the extended dataset and its draw."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from synthetic import SPECIES, TINY, cli_main, make_workspace, one_line_error, tiny_pretrain

from crmse_cli.data.dataset import Dataset
from crmse_cli.errors import CrmseError
from crmse_cli.registry.store import Registry
from crmse_cli.sampling.trajectory import Trajectory
from crmse_cli.stages.fetch_active import fetch_active, pick_frames
from crmse_cli.train.data import select_frames
from crmse_cli.train.pretrain import PretrainTrainer
from crmse_cli.workspace import Workspace

needs_tblite = pytest.mark.skipif(
    importlib.util.find_spec("tblite") is None, reason="needs tblite (xtb extra)"
)

# Replicas 1 and 4 left at steps 410 and 700; the others stayed. Frames every 20 steps from 0.
STEPS = 20 * np.arange(60)
LEFT = np.array([False, True, False, False, True, False])
FIRST = np.array([-1, 410, -1, -1, 700, -1])


def _traj() -> Trajectory:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(len(STEPS), len(LEFT), 9, 3)).astype(np.float32)
    x[STEPS > 410, 1] = np.nan  # replica 1 blew up after leaving
    return Trajectory(
        positions=x,
        energies=np.zeros((len(STEPS), len(LEFT))),
        time_fs=0.5 * STEPS,
        steps=STEPS,
        species=SPECIES,
        stability={"stability_left": LEFT, "stability_first_step": FIRST},
    )


def test_picks_are_deterministic_and_come_from_the_named_stretches() -> None:
    traj = _traj()
    # The first picks: the last recorded frame at or before each replica's leaving step.
    two = pick_frames(traj, 2, seed=0)
    assert two.replica.tolist() == [1, 4] and two.step.tolist() == [400, 700] and two.near_leaving.all()
    assert two.frame.tolist() == [20, 35]
    # Then the replicas that stayed, after the burn-in, evenly (4 replicas: 2 or 3 each).
    ten = pick_frames(traj, 10, seed=3, burn_in_steps=600)
    stayed = ~ten.near_leaving
    assert ten.near_leaving.sum() == 2 and (ten.step[stayed] >= 600).all()
    counts = np.bincount(ten.replica[stayed], minlength=6)[[0, 2, 3, 5]]
    assert sorted(counts.tolist()) == [2, 2, 2, 2]
    again = pick_frames(traj, 10, seed=3, burn_in_steps=600)
    other = pick_frames(traj, 10, seed=4, burn_in_steps=600)
    assert np.array_equal(ten.frame, again.frame) and np.array_equal(ten.replica, again.replica)
    assert not (np.array_equal(ten.frame, other.frame) and np.array_equal(ten.replica, other.replica))
    # per_left 3: three frames just before each leaving, the latest ones.
    six = pick_frames(traj, 6, per_left=3)
    assert six.near_leaving.all()
    assert six.step[six.replica == 1].tolist() == [360, 380, 400]
    assert six.step[six.replica == 4].tolist() == [660, 680, 700]
    # Every candidate: never after leaving, never step 0, left replicas only within the window.
    n_cand = 10 + 11 + 4 * 59  # window 200 steps: 220..400 and 500..700; stayed: steps 20..1180
    everything = pick_frames(traj, n_cand, burn_in_steps=0)
    at = everything.replica
    assert (everything.step > 0).all()
    assert (everything.step[at == 1] <= 410).all() and (everything.step[at == 1] >= 210).all()
    assert (everything.step[at == 4] <= 700).all() and (everything.step[at == 4] >= 500).all()
    # A replica whose frame at leaving is non-finite: the frame before it comes first.
    blown = traj.positions.copy()
    blown[35, 4] = np.nan
    assert pick_frames(dataclasses.replace(traj, positions=blown), 2).step.tolist() == [400, 680]
    with pytest.raises(CrmseError, match="fewer than --frames"):
        pick_frames(traj, n_cand + 1, burn_in_steps=0)
    with pytest.raises(CrmseError, match="no stability records"):
        pick_frames(dataclasses.replace(traj, stability={}), 2)


def test_select_frames_keeps_the_parent_draw_and_adds_the_new_rows() -> None:
    rows = np.arange(40)
    added = np.array([100, 101, 102])
    parent_train, parent_val = select_frames(rows, 20, 10, seed=5)
    train, val = select_frames(rows, 23, 10, seed=5, always=added)
    assert np.array_equal(val, parent_val)
    assert np.array_equal(train, np.union1d(parent_train, added))
    with pytest.raises(CrmseError, match="must exceed the split's 3 added frames"):
        select_frames(rows, 3, 10, seed=5, always=added)


def _xtb_workspace(tmp_path: Path) -> Workspace:
    """The synthetic workspace with its dataset marked as a GFN2-xTB reference (labels are not xTB's)."""
    ws = make_workspace(tmp_path / "home")
    reg = Registry.open(ws)
    info = reg.find_dataset("ethanol")
    assert info is not None
    fields = {f.name: getattr(info, f.name) for f in dataclasses.fields(info) if f.name != "created"}
    reg.add_dataset(
        **{**fields, "meta": {"kind": "xtb", "source": "xtb", "method": "gfn2", "label_method": "gfn2"}}
    )
    reg.close()
    return ws


@needs_tblite
def test_fetch_active_labels_extends_and_pretrains_on_parent_plus_new(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    from crmse_cli.data.xtb import energy_forces
    from crmse_cli.sampling.sample_config import SampleConfig
    from crmse_cli.stages.sample import sample

    ws = _xtb_workspace(tmp_path)
    tiny_pretrain(ws, "parent", val_fraction=None, n_val=5, n_train=15)
    sample(ws, "parent", SampleConfig(replicas=3, steps=40, record_every=10, seed=1), name="md")
    res = fetch_active(ws, "md", frames=4, name="eth-al4", seed=2, burn_in_steps=0)
    assert res.added == 4 and not res.fetch.already and res.label_s > 0

    reg = Registry.open(ws)
    old = Dataset.load(reg.get_dataset("ethanol").path)
    new = Dataset.load(reg.get_dataset("eth-al4").path)
    meta = reg.get_dataset("eth-al4").meta["active"]
    reg.close()
    assert new.n_frames == old.n_frames + 4
    for key in ("positions", "energies", "forces"):
        assert np.array_equal(getattr(new, key)[: old.n_frames], getattr(old, key))
    (old_train, old_test), (train, test) = old.split(1), new.split(1)
    rows = np.arange(old.n_frames, old.n_frames + 4)
    assert np.array_equal(test, old_test) and np.array_equal(train, np.concatenate([old_train, rows]))
    assert np.array_equal(new.added_rows(1), rows)
    assert np.array_equal(new.reference_indices(1), old.reference_indices(1))
    # The labels are a direct xTB call on the picked positions, the positions the MD's.
    e, f = energy_forces(SPECIES, new.positions[rows], "gfn2")
    assert np.array_equal(new.energies[rows], e) and np.array_equal(new.forces[rows], f)
    assert meta["from_sample_name"] == "md" and meta["frames"] == 4 and meta["seed"] == 2
    assert len(meta["replica"]) == 4 and meta["label_method"] == "gfn2"

    # The pretrain draw: the parent's 15 training frames plus the 4, the parent's validation frames.
    cfg = dataclasses.replace(TINY, val_fraction=None, n_val=5, n_train=15)
    parent = PretrainTrainer.create(cfg, old, 1)
    child = PretrainTrainer.create(dataclasses.replace(cfg, n_train=19), new, 1)
    assert np.array_equal(child.val_set.rows, parent.val_set.rows)
    assert np.array_equal(child.train_set.rows, np.union1d(parent.train_set.rows, rows))

    # The same call again is the same dataset; another seed under the name is refused.
    assert fetch_active(ws, "md", frames=4, name="eth-al4", seed=2, burn_in_steps=0).fetch.already
    with pytest.raises(CrmseError, match="registered already"):
        fetch_active(ws, "md", frames=4, name="eth-al4", seed=3, burn_in_steps=0)
    # The CLI: help, and one-line refusals (not a sample run; no tblite).
    assert cli_main(monkeypatch, capsys, "fetch", "active", "--help")[0] == 0
    cli = ("--home", str(ws.home), "fetch", "active", "--frames", "2", "--name", "x")
    one_line_error(cli_main(monkeypatch, capsys, *cli, "--from-sample", "parent"), "not a sample run")
    monkeypatch.setitem(sys.modules, "tblite", None)
    one_line_error(cli_main(monkeypatch, capsys, *cli, "--from-sample", "md"), "crmse[xtb]")


def test_fetch_active_refuses_a_dataset_without_an_xtb_labeller(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "home")
    from crmse_cli.sampling.sample_config import SampleConfig
    from crmse_cli.stages.sample import sample

    tiny_pretrain(ws, "parent")
    sample(ws, "parent", SampleConfig(replicas=2, steps=20, record_every=10), name="md")
    with pytest.raises(CrmseError, match="has no xTB labeller"):
        fetch_active(ws, "md", frames=2, name="eth-al2")
