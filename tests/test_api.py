"""`crmse_cli.api`, the library's face: its names are real imports, and its docstring's pipeline runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from crmse_cli import api

pytestmark = pytest.mark.slow


def test_every_exported_name_is_a_module_attribute() -> None:
    """Type checkers and editors see what ``__all__`` promises: no lazy ``__getattr__``."""
    assert "__getattr__" not in vars(api)
    missing = [name for name in api.__all__ if name not in vars(api)]
    assert missing == []
    from crmse_cli.stages import pretrain, regularize

    assert api.pretrain is pretrain.pretrain and api.RegularizeConfig is regularize.RegularizeConfig


def test_the_docstring_pipeline_at_tiny_sizes(tmp_path: Path, synthetic_archive: Path) -> None:
    ws = api.Workspace.resolve(tmp_path / "crmse-work")
    api.fetch_rmd17(ws, "ethanol", from_path=synthetic_archive)
    cfg = dataclasses.replace(api.preset_config("quick"), n_train=40, n_val=20, max_epochs=1)
    model = api.pretrain(ws, dataset="ethanol", config=cfg, name="mse", progress=False)
    md = api.sample(ws, "mse", api.SampleConfig(replicas=2, steps=20, record_every=10))
    result = api.evaluate(ws, md.run_id)
    reg = api.Registry.open(ws)
    assert [r.kind for r in reg.list_runs()] == ["pretrain", "sample", "evaluate"]
    assert reg.get_run(result.run_id).parent == md.run_id and reg.get_run(md.run_id).parent == model.run_id
    assert "energy_ks" in result.metrics
