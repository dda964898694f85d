"""The sample, evaluate and regularize stages on rMD17-layout ethanol frames (tiny sizes).

One module-scoped workspace holds a dataset fetched from the synthetic archive (conftest) and a
briefly trained model; each test adds its own runs. One test repeats the evaluation on the real
mini archive and checks what only real frames show (skipped without ../shared/data).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import MINI_ARCHIVE, SYNTHETIC_FRAMES, SYNTHETIC_TEST, SYNTHETIC_TRAIN, require_shared

from crmse_cli.errors import CrmseError, NotFoundError
from crmse_cli.model.checkpoint import load_checkpoint
from crmse_cli.workspace import Workspace

# -n 2 --dist loadgroup: the module's tests share one worker, so its runs are built once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("stages")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, synthetic_archive: Path) -> tuple[Workspace, str]:
    return _trained(tmp_path_factory, synthetic_archive)


def _trained(tmp_path_factory: pytest.TempPathFactory, archive: Path) -> tuple[Workspace, str]:
    from crmse_cli.stages.fetch import fetch_rmd17
    from crmse_cli.stages.pretrain import preset_config, pretrain

    ws = Workspace.resolve(tmp_path_factory.mktemp("ws"))
    fetch_rmd17(ws, "ethanol", from_path=archive)
    cfg = preset_config("quick", {"n_train": 60, "n_val": 20, "max_epochs": 3})
    res = pretrain(ws, dataset="ethanol", split="01", config=cfg, name="tiny", progress=False)
    return ws, res.run_id


def _registry(ws: Workspace):  # noqa: ANN202
    from crmse_cli.registry.store import Registry

    return Registry.open(ws)


def test_sample_records_frames_monitor_and_metrics(trained: tuple[Workspace, str]) -> None:
    from crmse_cli.sampling.trajectory import load_trajectory
    from crmse_cli.stages.sample import SampleConfig, sample

    ws, model = trained
    cfg = SampleConfig(replicas=4, steps=60, record_every=20, seed=3)
    res = sample(ws, model, cfg, name="s-tiny")
    reg = _registry(ws)
    run = reg.get_run("s-tiny")
    assert run.status == "completed" and run.parent == model and run.kind == "sample"
    traj = load_trajectory(res.samples_path)
    assert traj.positions.shape == (4, 4, 9, 3)  # steps 0, 20, 40, 60
    np.testing.assert_allclose(traj.time_fs, [0.0, 10.0, 20.0, 30.0])
    assert np.isfinite(traj.energies).all()
    finals = reg.final_metrics(run.id)
    assert finals["n_replicas"].value == 4
    assert 0.0 <= finals["stable_fraction"].value <= 1.0
    assert {a.kind for a in reg.artifacts(run.id)} == {"samples", "extxyz"}
    # Same seed, same trajectory.
    again = sample(ws, model, cfg)
    np.testing.assert_array_equal(load_trajectory(again.samples_path).positions, traj.positions)


def test_evaluate_sample_run_stores_distribution_metrics(trained: tuple[Workspace, str]) -> None:
    from crmse_cli.stages.evaluate import evaluate
    from crmse_cli.stages.sample import SampleConfig, sample

    ws, model = trained
    s = sample(ws, model, SampleConfig(replicas=4, steps=100, record_every=10, seed=1))
    res = evaluate(ws, s.run_id)
    reg = _registry(ws)
    finals = reg.final_metrics(res.run_id)
    for name in (
        "test_energy_mae",
        "test_force_mae",
        "energy_ks",
        "hr_mae",
        "config_temperature_ref_K",
        "dihedral_profile_error.hydroxyl",
        "dihedral_profile_error.methyl",
        "stable_fraction",
    ):
        assert name in finals, name
    assert 0.0 <= finals["energy_ks"].value <= 1.0
    assert 0.0 <= finals["hr_mae"].value <= 2.0
    # Frames in neither train_01 nor test_01 (disjoint in the synthetic archive).
    assert finals["n_ref_frames"].value == SYNTHETIC_FRAMES - SYNTHETIC_TRAIN - SYNTHETIC_TEST
    assert np.isfinite(finals["config_temperature_ref_K"].value)
    assert np.isfinite(finals["virial_temperature_ref_K"].value)
    assert finals["virial_temperature_ref_K_err"].value > 0.0
    assert finals["virial_temperature_sample_K_err"].value > 0.0
    with np.load(res.evaluation_path) as z:
        assert z["hr_sample"].shape == (500,)
        assert z["survival_fraction"].shape == z["survival_time_ps"].shape
    assert reg.get_run(res.run_id).parent == s.run_id


@pytest.mark.shared
def test_evaluate_on_the_real_mini_archive(tmp_path_factory: pytest.TempPathFactory) -> None:
    from crmse_cli.stages.evaluate import evaluate
    from crmse_cli.stages.sample import SampleConfig, sample

    ws, model = _trained(tmp_path_factory, require_shared(MINI_ARCHIVE))
    s = sample(ws, model, SampleConfig(replicas=4, steps=100, record_every=10, seed=1))
    finals = _registry(ws).final_metrics(evaluate(ws, s.run_id).run_id)
    assert finals["n_ref_frames"].value == 7633  # frames in neither train_01 nor test_01
    # The reference frames are hotter than their nominal 500 K (METHOD.md): the estimator sees it.
    assert finals["config_temperature_ref_K"].value > 550.0
    # rMD17 forces on frames sampled on the MD17 surface: the virial estimator reads ~-86 K (issue 13).
    assert -200.0 < finals["virial_temperature_ref_K"].value < 20.0
    assert 0.0 < finals["virial_temperature_ref_K_err"].value < 60.0


def test_evaluate_model_run_matches_pretrain_test_metrics(trained: tuple[Workspace, str]) -> None:
    from crmse_cli.stages.evaluate import evaluate

    ws, model = trained
    reg = _registry(ws)
    res = evaluate(ws, model)
    before = reg.final_metrics(model)
    assert res.metrics["test_force_mae"][0] == pytest.approx(before["test_force_mae"].value, rel=1e-4)
    assert res.evaluation_path is None
    assert res.metrics["virial_temperature_ref_K"][1] == "K"


def _regularize_config(updates: int):  # noqa: ANN202
    from crmse_cli.stages.regularize import RegularizeConfig
    from crmse_cli.train.contrastive import ContrastiveConfig

    c = ContrastiveConfig(
        n_chains=4, steps_per_update=5, n_updates=updates, batch_size=8, warmup_updates=2, lr=1e-4, seed=7
    )
    return RegularizeConfig(contrastive=c, val_every=2, checkpoint_every=1, chains_every=2)


def test_regularize_logs_updates_chains_and_test_metrics(trained: tuple[Workspace, str]) -> None:
    from crmse_cli.stages.regularize import regularize

    ws, model = trained
    res = regularize(ws, model, _regularize_config(4), name="crmse-tiny")
    reg = _registry(ws)
    run = reg.get_run("crmse-tiny")
    assert run.status == "completed" and run.parent == model
    assert run.config["lambda"] == 0.015 and run.config["steps_per_update"] == 5
    steps = [m.step for m in reg.metrics(run.id, name="loss_c")]
    assert steps == [1, 2, 3, 4]
    for name in ("loss_mse", "chain_ks", "resets", "energy_chains", "val_force_mae", "test_force_mae"):
        assert name in reg.final_metrics(run.id), name
    chains = reg.artifacts(run.id, kind="chains")
    assert [a.meta["update"] for a in chains] == [0, 2, 4]
    with np.load(chains[-1].path) as z:
        assert z["positions"].shape == (4, 9, 3)
    assert res.checkpoint.name == "final.pt"


def test_regularize_resume_after_interrupt_is_exact(trained: tuple[Workspace, str], monkeypatch) -> None:
    from synthetic import regularize_cut_at

    from crmse_cli.stages.regularize import regularize

    ws, model = trained
    full = regularize(ws, model, _regularize_config(4))
    regularize_cut_at(ws, monkeypatch, model, _regularize_config(4), name="interrupted", update=3)
    reg = _registry(ws)
    assert reg.get_run("interrupted").status == "interrupted"
    resumed = regularize(ws, None, _regularize_config(4), resume="interrupted")
    assert reg.get_run("interrupted").status == "completed"
    a, pa = load_checkpoint(full.checkpoint)
    b, pb = load_checkpoint(resumed.checkpoint)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb
        torch.testing.assert_close(va, vb, rtol=0, atol=0)
    torch.testing.assert_close(
        pa["extra"]["trainer"]["chains"], pb["extra"]["trainer"]["chains"], rtol=0, atol=0
    )
    # Logged once per update, although updates 3-4 ran in two processes' worth of attempts.
    assert [m.step for m in reg.metrics(reg.get_run("interrupted").id, name="loss")] == [1, 2, 3, 4]


def test_bad_references_give_one_line_errors(trained: tuple[Workspace, str], tmp_path: Path) -> None:
    from crmse_cli.stages.regularize import regularize
    from crmse_cli.stages.sample import SampleConfig, sample

    ws, model = trained
    with pytest.raises(NotFoundError, match="no run"):
        sample(ws, "no-such-run", SampleConfig(replicas=2, steps=2))
    with pytest.raises(CrmseError, match="integrator"):
        SampleConfig(integrator="verlet")
    with pytest.raises(NotFoundError, match="does not exist"):
        sample(ws, str(tmp_path / "missing.pt"), SampleConfig(replicas=2, steps=2))
    with pytest.raises(CrmseError, match="--from"):
        regularize(ws, None, _regularize_config(1))


def test_regularize_starts_from_the_pretrain_weights_and_adam_moments(trained: tuple[Workspace, str]) -> None:
    from dataclasses import replace

    from crmse_cli.stages.regularize import regularize

    ws, model = trained
    reg = _registry(ws)
    last = [c for c in reg.checkpoints(model) if c.tag == "last"][-1]
    pre = torch.load(last.path, map_location="cpu", weights_only=False)["extra"]
    pre_steps = {int(s["step"]) for s in pre["optimizer"]["state"].values()}
    raw = regularize(ws, model, _regularize_config(2), name="init-raw")
    cfg = _regularize_config(2)
    ema = regularize(
        ws, model, replace(cfg, contrastive=replace(cfg.contrastive, init="ema")), name="init-ema"
    )
    _, p_raw = load_checkpoint(raw.checkpoint)
    _, p_ema = load_checkpoint(ema.checkpoint)
    raw_steps = {int(s["step"]) for s in p_raw["extra"]["trainer"]["optimizer"]["state"].values()}
    ema_steps = {int(s["step"]) for s in p_ema["extra"]["trainer"]["optimizer"]["state"].values()}
    assert raw_steps == {s + 2 for s in pre_steps}  # Adam continued pretraining's moments
    assert ema_steps == {2}  # a fresh Adam
    run = reg.get_run("init-raw")
    assert run.config["lambda_units"] == "eV"
    assert run.config["lambda_internal"] == pytest.approx(0.015 * 531.8, rel=2e-4)
    assert run.config["contrastive"]["energy_weight"] == pre["config"]["energy_weight"]
    for name in ("grad_ratio", "grad_norm_mse", "chain_tconf"):
        assert name in reg.final_metrics(run.id), name


def test_init_raw_from_a_bare_checkpoint_is_refused_before_a_run_exists(
    trained: tuple[Workspace, str],
) -> None:
    from crmse_cli.stages.regularize import regularize

    ws, model = trained
    reg = _registry(ws)
    best = [c for c in reg.checkpoints(model) if c.tag == "best"][-1].path
    before = len(reg.list_runs())
    with pytest.raises(CrmseError, match="--init ema"):
        regularize(ws, best, _regularize_config(1))
    assert len(reg.list_runs()) == before  # no failed run left behind
