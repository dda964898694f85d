"""Every numeric setting is checked in one place (crmse_cli/validate.py) before a run exists."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from synthetic import cli_main, one_line_error
from test_cli import _one_line_error, crmse

from crmse_cli.config import from_dict, load_config
from crmse_cli.errors import CrmseError
from crmse_cli.model.config import ModelConfig
from crmse_cli.stages.regularize import RegularizeConfig
from crmse_cli.stages.sample import SampleConfig
from crmse_cli.train.contrastive import ContrastiveConfig
from crmse_cli.train.pretrain_config import PretrainConfig
from crmse_cli.validate import ConfigError, Range, check_value


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.1])
def test_lambda_must_be_finite_and_not_negative(value: float) -> None:
    with pytest.raises(CrmseError, match="lambda must be"):
        ContrastiveConfig(lambda_=value)


@pytest.mark.parametrize(
    ("field", "value"),
    [("temperature_K", math.nan), ("eta_A2", math.nan), ("temperature_K", math.inf), ("lr", math.nan),
     ("reset_fraction", math.nan), ("fly_apart_A", math.inf), ("grad_clip", math.nan)],
)  # fmt: skip
def test_contrastive_settings_refuse_nan_and_inf(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"{field} must be"):
        ContrastiveConfig(**{field: value})


@pytest.mark.parametrize("value", [math.inf, 1e300, math.nan, 0.0, -5.0])
def test_sample_temperature_must_be_finite_and_physical(value: float) -> None:
    with pytest.raises(CrmseError, match="temperature_K must be"):
        SampleConfig(temperature_K=value)


@pytest.mark.parametrize("field", ["timestep_fs", "friction_per_fs", "eta_A2"])
def test_sample_step_sizes_refuse_nan(field: str) -> None:
    with pytest.raises(CrmseError, match=field):
        SampleConfig(**{field: math.nan})


@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf])
def test_pretrain_budget_is_finite_and_not_negative(value: float) -> None:
    with pytest.raises(CrmseError, match="max_minutes must be"):
        PretrainConfig(max_minutes=value)
    PretrainConfig(max_minutes=0.0)  # 0: no budget
    PretrainConfig(max_minutes=None)


def test_integers_must_be_integers() -> None:
    with pytest.raises(CrmseError, match="n_updates must be an integer, got 2.5"):
        from_dict(ContrastiveConfig, {"n_updates": 2.5})
    with pytest.raises(CrmseError, match="must be an integer"):
        from_dict(ContrastiveConfig, {"n_chains": True})
    with pytest.raises(CrmseError, match="must be an integer"):
        SampleConfig(replicas=4.0)  # type: ignore[arg-type]
    with pytest.raises(CrmseError, match="model.layers must be an integer"):
        ModelConfig(layers=2.5)  # type: ignore[arg-type]
    with pytest.raises(CrmseError, match="val_every"):
        RegularizeConfig(val_every=0)
    assert from_dict(ContrastiveConfig, {"n_updates": 3, "lr": 1}).lr == 1  # ints are numbers


def test_toml_with_a_float_count_is_refused_with_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("max_epochs = 2.5\n")
    with pytest.raises(CrmseError, match=r"c\.toml: max_epochs must be an integer, got 2\.5"):
        load_config(PretrainConfig, path)


def test_model_must_be_a_table(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("model = 5\n")
    with pytest.raises(CrmseError, match="model must be a table"):
        load_config(PretrainConfig, path)


def test_non_utf8_config_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes("# caf\xe9\nmax_epochs = 3\n".encode("latin-1"))
    with pytest.raises(CrmseError, match="not UTF-8"):
        load_config(PretrainConfig, path)


def test_ranges_describe_themselves() -> None:
    r = Range.parse("(0, 1]")
    assert 1.0 in r and 0.0 not in r and 0.5 in r
    with pytest.raises(ConfigError, match=r"x must be in \(0, 1\], got 2"):
        check_value("x", 2, float, r)
    check_value("y", None, int | None)


def test_bad_options_stop_before_a_run_row_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Options are refused before the registry is touched: no ``failed`` run is left behind."""
    home = tmp_path / "home"
    cfg = tmp_path / "c.toml"
    cfg.write_text("[contrastive]\nn_updates = 2.5\n")
    for args, text in [
        (("regularize", "--from", "nothing", "--lambda", "nan"), "--lambda must be a finite number"),
        (("regularize", "--from", "nothing", "--lambda", "inf"), "lambda"),
        (("regularize", "--from", "nothing", "--temperature-K", "nan"), "--temperature-K"),
        (("regularize", "--from", "nothing", "--eta-A2", "nan"), "--eta-A2"),
        (("regularize", "--from", "nothing", "--config", str(cfg)), "n_updates must be an integer"),
        (("sample", "nothing", "--temperature-K", "1e300"), "--temperature-K"),
        (("pretrain", "--dataset", "nothing", "--max-minutes", "-1"), "--max-minutes"),
        (("pretrain", "--dataset", "nothing", "--max-minutes", "nan"), "--max-minutes"),
    ]:
        one_line_error(cli_main(monkeypatch, capsys, "--home", str(home), *args), text)
    assert not (home / "crmse.db").exists()


def test_the_console_script_refuses_a_nan_lambda(tmp_path: Path) -> None:
    _one_line_error(crmse(tmp_path / "home", "regularize", "--from", "x", "--lambda", "nan"), "lambda")
    assert not (tmp_path / "home" / "crmse.db").exists()
