"""The library's face: every command as a plain function (what the CLI calls).

    from crmse_cli import api
    ws = api.Workspace.resolve("~/crmse-work")
    api.fetch_rmd17(ws, "ethanol", from_path="rmd17.tar.bz2")
    model = api.pretrain(ws, dataset="ethanol", config=api.preset_config("default"), name="mse")
    crmse = api.regularize(ws, "mse", api.RegularizeConfig(), name="crmse")
    md = api.sample(ws, "crmse", api.SampleConfig(replicas=64, steps=20000))
    api.evaluate(ws, md.run_id)

Importing this module imports torch (the stages need it); the CLI does not import it, so
``crmse --help`` stays fast.
"""

from __future__ import annotations

from crmse_cli.registry.store import Registry
from crmse_cli.stages.compare import compare
from crmse_cli.stages.doctor import doctor
from crmse_cli.stages.evaluate import evaluate
from crmse_cli.stages.fetch import fetch_rmd17, fetch_xyz
from crmse_cli.stages.pretrain import preset_config, pretrain
from crmse_cli.stages.regularize import RegularizeConfig, regularize
from crmse_cli.stages.reproduce import reproduce
from crmse_cli.stages.sample import SampleConfig, sample
from crmse_cli.train.contrastive import ContrastiveConfig
from crmse_cli.train.pretrain_config import PretrainConfig
from crmse_cli.workspace import Workspace

__all__ = [
    "ContrastiveConfig",
    "PretrainConfig",
    "Registry",
    "RegularizeConfig",
    "SampleConfig",
    "Workspace",
    "compare",
    "doctor",
    "evaluate",
    "fetch_rmd17",
    "fetch_xyz",
    "preset_config",
    "pretrain",
    "regularize",
    "reproduce",
    "sample",
]
