"""The library's face: every command as a plain function (what the CLI calls).

    from crmse_cli import api
    ws = api.Workspace.resolve("~/crmse-work")
    api.fetch_rmd17(ws, "ethanol", from_path="rmd17.tar.bz2")
    model = api.pretrain(ws, dataset="ethanol", config=api.preset_config("default"), name="mse")
    crmse = api.regularize(ws, "mse", api.RegularizeConfig(), name="crmse")
    md = api.sample(ws, "crmse", api.SampleConfig(replicas=64, steps=20000))
    api.evaluate(ws, md.run_id)

Heavy modules (torch) load on first use of a function, not on ``import crmse_cli.api``.
"""

from __future__ import annotations

from typing import Any

from crmse_cli.workspace import Workspace

_WHERE = {
    "fetch_rmd17": "crmse_cli.stages.fetch",
    "fetch_xyz": "crmse_cli.stages.fetch",
    "pretrain": "crmse_cli.stages.pretrain",
    "preset_config": "crmse_cli.stages.pretrain",
    "PretrainConfig": "crmse_cli.train.pretrain_config",
    "sample": "crmse_cli.stages.sample",
    "SampleConfig": "crmse_cli.stages.sample",
    "evaluate": "crmse_cli.stages.evaluate",
    "regularize": "crmse_cli.stages.regularize",
    "RegularizeConfig": "crmse_cli.stages.regularize",
    "ContrastiveConfig": "crmse_cli.train.contrastive",
    "compare": "crmse_cli.stages.compare",
    "reproduce": "crmse_cli.stages.reproduce",
    "doctor": "crmse_cli.stages.doctor",
    "Registry": "crmse_cli.registry.store",
}

__all__ = ["Workspace", *_WHERE]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'crmse_cli.api' has no attribute {name!r}")
