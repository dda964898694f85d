"""A potential's accuracy on labelled frames: energy and force MAE / RMSE, as metric rows.

What ``crmse evaluate`` reports for a model run (:func:`test_metrics`), and what pretraining,
regularization and the force budget read on validation frames (:func:`frame_errors`).
"""

from __future__ import annotations

import numpy as np

from crmse_cli.data.dataset import Dataset
from crmse_cli.errors import CrmseError
from crmse_cli.model.potential import Potential
from crmse_cli.train.data import FrameSet
from crmse_cli.train.losses import error_metrics, evaluate_errors


def test_metrics(
    potential: Potential, data: Dataset, split: str, *, batch: int = 100
) -> dict[str, tuple[float, str]]:
    """Energy / force MAE and RMSE on the test frames of ``split`` (kcal/mol and meV)."""
    _, test = data.split(split)
    if len(test) == 0:
        raise CrmseError(f"dataset {data.name!r} split {split} has no test frames")
    return frame_errors(potential, data, test, prefix="test", batch=batch)


test_metrics.__test__ = False  # type: ignore[attr-defined]  # a library function, not a pytest test


def frame_errors(
    potential: Potential, data: Dataset, rows: np.ndarray, *, prefix: str, batch: int = 100
) -> dict[str, tuple[float, str]]:
    """Energy / force MAE and RMSE of ``potential`` on frames ``rows``, named ``{prefix}_energy_mae`` etc."""
    device = next(potential.parameters()).device
    f = FrameSet.from_dataset(data, rows, dtype=potential.dtype, device=device)
    errors = evaluate_errors(potential, f.positions, f.species, f.energies, f.forces, batch_size=batch)
    return error_metrics(errors, prefix=prefix)
