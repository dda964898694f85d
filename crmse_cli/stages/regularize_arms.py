"""The study arms of `crmse regularize` on the stage side (docs/method.md, "Study arms").

The trainer (:mod:`crmse_cli.train.contrastive`) does the arms' work; this module gives it what
only the stage knows: the positions of the larger positive set (``positives = "split"``), the
parent's validation force MAE and the validation hook that steers lambda under a force budget
(``lambda_control = "budget"``, :class:`crmse_cli.train.lambda_schedule.LambdaSchedule`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from crmse_cli.errors import CrmseError
from crmse_cli.train.accuracy import frame_errors
from crmse_cli.train.lambda_schedule import under_budget

if TYPE_CHECKING:
    from crmse_cli.data.dataset import Dataset
    from crmse_cli.stages._models import ModelHandle
    from crmse_cli.train.contrastive import ContrastiveTrainer
    from crmse_cli.train.contrastive_config import ContrastiveConfig

Errors = dict[str, tuple[float, str]]
"""Validation errors as :func:`crmse_cli.train.accuracy.frame_errors` names them (``val_force_mae``)."""


def check_arms(cfg: ContrastiveConfig, *, force_budget: float | None, val_rows: np.ndarray) -> None:
    """Refuse settings an arm cannot run with, before the run row exists.

    Raises:
        CrmseError: ``lambda_control = "budget"`` without a force budget or validation frames.
    """
    if cfg.lambda_control != "budget":
        return
    if force_budget is None:
        raise CrmseError("--lambda-control budget steers lambda against --force-budget: pass --force-budget")
    if len(val_rows) == 0:
        raise CrmseError(
            "--lambda-control budget needs the parent's validation frames; start from a pretrain run "
            "(or a run of one), not a bare checkpoint"
        )


def positive_rows(
    data: Dataset, split: str, train_rows: np.ndarray, val_rows: np.ndarray, positives: str
) -> np.ndarray | None:
    """Rows of L_C's data term when it is not the labelled frames (None for ``"labelled"``).

    ``"split"``: every frame of the split's training part less the parent's validation frames
    (kept out so that the validation error, and a budget read on it, stays independent of
    training), labelled or not; it contains ``train_rows``.
    """
    if positives == "labelled":
        return None
    train_part, _ = data.split(split)
    pool = np.setdiff1d(np.asarray(train_part, dtype=np.int64), val_rows)
    return np.union1d(pool, train_rows)


def parent_force_mae(handle: ModelHandle, data: Dataset, val_rows: np.ndarray) -> float:
    """Validation force MAE of the parent as it was resolved (kcal/mol/Å), before any start weights."""
    handle.potential.eval()
    value = frame_errors(handle.potential, data, val_rows, prefix="val")["val_force_mae"][0]
    handle.potential.train()
    return float(value)


def lambda_steer(
    trainer: ContrastiveTrainer, parent_mae: float | None, force_budget: float | None
) -> Callable[[Errors], None]:
    """The validation hook of ``lambda_control = "budget"`` (a no-op otherwise).

    Args:
        trainer: its lambda schedule is told whether each validation is under budget.
        parent_mae: the parent's validation force MAE, kcal/mol/Å (:func:`parent_force_mae`).
        force_budget: the relative budget (0.10: within 10% of the parent's).
    """

    def steer(errors: Errors) -> None:
        if parent_mae is None or force_budget is None or "val_force_mae" not in errors:
            return
        value = errors["val_force_mae"][0]
        trainer.lambda_schedule.observe_validation(under_budget(value, parent_mae, force_budget))

    return steer
