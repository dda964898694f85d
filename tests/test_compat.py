"""registry/compat.py: old runs read as they ran; a field no fix-up explains is a one-line error."""

from __future__ import annotations

import pytest

from crmse_cli.errors import CrmseError
from crmse_cli.registry import compat


def test_a_regularize_run_before_2026_12_02_reads_as_it_ran() -> None:
    old = {"lambda": 0.015, "contrastive": {"lambda_": 0.015, "grad_clip": None, "eta_A2": 4e-4}}
    c = compat.regularize_contrastive(old)
    assert (c["grad_clip"], c["lambda_units"], c["init"]) == (0.0, "kcal", "ema")
    assert compat.regularize_budget(old) == {}
    lam = compat.lambda_setting("0ld0run0", old)
    assert (lam.value, lam.units, lam.internal) == (0.015, "kcal", 0.015)  # kcal: the weight is lambda


def test_recorded_settings_win_over_the_fixups() -> None:
    contrastive = {"lambda_": 0.015, "lambda_units": "eV", "grad_clip": 100.0, "init": "raw"}
    new = {"lambda": 0.015, "lambda_units": "eV", "lambda_internal": 7.977, "contrastive": contrastive}
    c = compat.regularize_contrastive(new)
    assert (c["grad_clip"], c["lambda_units"], c["init"]) == (100.0, "eV", "raw")
    assert compat.lambda_setting("1a2b3c4d", new) == compat.LambdaSetting(0.015, "eV", 7.977)


def test_a_missing_field_names_the_run_and_the_field() -> None:
    with pytest.raises(CrmseError, match=r"regularize run 1a2b3c4d's config has no 'lambda'"):
        compat.lambda_setting("1a2b3c4d", {"contrastive": {}})
    # an eV lambda's weight cannot be guessed from a kcal-era rule
    with pytest.raises(CrmseError, match=r"1a2b3c4d's config has no 'lambda_internal'"):
        compat.lambda_setting("1a2b3c4d", {"lambda": 0.015, "lambda_units": "eV"})
    with pytest.raises(CrmseError, match=r"evaluate run 9a9a's metrics has no 'sampling_temperature_K'"):
        compat.evaluated_temperature_K("9a9a", {"energy_ks": (0.1, "1")})
    assert compat.evaluated_temperature_K("9a9a", {"sampling_temperature_K": (350.0, "K")}) == 350.0
