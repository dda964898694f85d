"""registry/run_records.py: a run's recorded config read as typed records; old runs read as they ran."""

from __future__ import annotations

import pytest

from crmse_cli.describe import run_lines
from crmse_cli.errors import CrmseError
from crmse_cli.registry.run_records import ModelRunRecord, PretrainRecord, RegularizeRecord, SampleRecord

PRETRAIN = {
    "split": "01",
    "n_train": 200,
    "n_val": 100,
    "max_epochs": 400,
    "max_minutes": 5.0,
    "n_train_frames": 200,
    "n_val_frames": 100,
    "labels": "rmd17",  # a fact of the run, not a setting: not read into PretrainConfig
}


def test_a_pretrain_record_holds_its_settings_as_pretrain_config() -> None:
    run = PretrainRecord.of("1a2b3c4d", PRETRAIN)
    assert (run.split, run.n_train_frames, run.n_val_frames) == ("01", 200, 100)
    assert (run.settings.max_epochs, run.settings.max_minutes) == (400, 5.0)
    assert run.val_frames_sha256 is None  # runs before 2026-12-07 recorded no digest
    lines = dict(run_lines("1a2b3c4d", "pretrain", PRETRAIN, {"stopped_by_time_budget": 1.0}))
    assert lines["frames"].startswith("trains on 200 frames and validates on 100 others of split 01")
    assert "(max_minutes 5) before max_epochs 400" in lines["stopped by"]


def test_a_missing_frame_count_names_the_run_and_the_field() -> None:
    config = {k: v for k, v in PRETRAIN.items() if k != "n_train_frames"}
    with pytest.raises(CrmseError, match=r"pretrain run 1a2b3c4d's config has no 'n_train_frames'"):
        run_lines("1a2b3c4d", "pretrain", config, {})


def test_a_bad_setting_names_the_run() -> None:
    with pytest.raises(CrmseError, match=r"pretrain run 1a2b3c4d's config: .*max_epochs"):
        PretrainRecord.of("1a2b3c4d", {**PRETRAIN, "max_epochs": -1})


def test_an_old_regularize_run_reads_with_the_settings_it_predates_as_it_ran() -> None:
    # before 2026-12-02: no eta_units, lc_beta, chain temperature, lambda units nor internal weight
    old = {"lambda": 0.015, "eta_A2": 4e-4, "contrastive": {"lambda_": 0.015, "eta_A2": 4e-4}}
    run = RegularizeRecord.of("0ld0run0", old)
    c = run.contrastive
    assert (c.eta_units, c.lc_beta, c.lambda_units, c.chain_T_K) == ("A2", True, "kcal", 500.0)
    assert (run.lambda_.internal, run.budget.force_budget) == (0.015, None)
    lines = dict(run_lines("0ld0run0", "regularize", old, {}))
    assert lines["chain step"].startswith("eta 0.0004 Å² of the beta-scaled")
    assert "weight against L_MSE[kcal] 0.015" in lines["L_C"]


def test_a_regularize_run_without_lambda_names_the_run() -> None:
    with pytest.raises(CrmseError, match=r"regularize run 1a2b3c4d's config has no 'lambda'"):
        run_lines("1a2b3c4d", "regularize", {"eta_A2": 4e-4, "contrastive": {}}, {})


SAMPLE = {"split": "01", "integrator": "ula", "temperature_K": 450.0, "timestep_fs": 0.5, "replicas": 8}


def test_a_sample_record_holds_its_sample_config_and_requires_what_every_run_recorded() -> None:
    run = SampleRecord.of("5a5a5a5a", {**SAMPLE, "steps": 100, "checkpoint": "c.pt"})
    assert (run.split, run.settings.integrator, run.settings.temperature_K) == ("01", "ula", 450.0)
    assert run.settings.processes == 1  # runs before --processes ran in one process
    # a samples run without its temperature was once profiled at 500 K without a word
    no_temperature = {k: v for k, v in SAMPLE.items() if k != "temperature_K"}
    with pytest.raises(CrmseError, match=r"sample run 5a5a5a5a's config has no 'temperature_K'"):
        SampleRecord.of("5a5a5a5a", {**no_temperature, "steps": 100})
    with pytest.raises(CrmseError, match=r"sample run 5a5a5a5a's config has no 'steps'"):
        SampleRecord.of("5a5a5a5a", SAMPLE)


def test_a_model_run_record_names_the_run_and_the_missing_field() -> None:
    run = ModelRunRecord.of("1a2b3c4d", "pretrain", {"n_train": 200, "model": {"architecture": "painn"}})
    assert (run.n_train, run.architecture) == (200, "painn")
    with pytest.raises(CrmseError, match=r"regularize run 1a2b3c4d's config, model has no 'architecture'"):
        ModelRunRecord.of("1a2b3c4d", "regularize", {"n_train": 200, "model": {}})
    with pytest.raises(CrmseError, match=r"pretrain run 1a2b3c4d's config has no 'model'"):
        ModelRunRecord.of("1a2b3c4d", "pretrain", {"n_train": 200})
