"""The settings of `crmse regularize`: one frozen dataclass, torch-free so the CLI's help reads it."""

from __future__ import annotations

from dataclasses import dataclass

from crmse_cli.settings import setting
from crmse_cli.train.budget import BudgetConfig
from crmse_cli.train.contrastive_config import ContrastiveConfig
from crmse_cli.validate import COUNT_RANGE, check_config


@dataclass(frozen=True)
class RegularizeConfig:
    """CRMSE settings: the trainer's hyper-parameters plus bookkeeping intervals.

    ``contrastive`` holds lambda, eta, K, chains, updates, lr and warm-up (see
    :class:`crmse_cli.train.contrastive.ContrastiveConfig` for their documented defaults). Energy
    and force weights are taken from the pretraining run unless set explicitly. ``budget``: the
    force budget (:class:`crmse_cli.train.budget.BudgetConfig`; off by default). The intervals are
    the ``[regularize]`` table of a config file.

    Attributes:
        val_every: updates between validations (and the lambda controller's steps).
        checkpoint_every: updates between resumable checkpoints.
        chains_every: updates between snapshots of the persistent chains.
        device: "cpu" or "cuda[:n]".
    """

    contrastive: ContrastiveConfig = ContrastiveConfig()
    budget: BudgetConfig = BudgetConfig()
    val_every: int = setting(25, range=COUNT_RANGE, help="Updates between validations.")
    checkpoint_every: int = setting(25, range=COUNT_RANGE, help="Updates between resumable checkpoints.")
    chains_every: int = setting(50, range=COUNT_RANGE, help="Updates between snapshots of the chains.")
    device: str = setting("cpu", help="cpu, cuda (the current GPU) or cuda:N (GPU N).")

    def __post_init__(self) -> None:
        check_config(self)
