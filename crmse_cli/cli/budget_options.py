"""The force-budget table of `crmse regularize`: ``[budget]`` of its config file.

Its options are declared on :class:`crmse_cli.train.budget.BudgetConfig`'s fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from crmse_cli.config import load_config, read_config_file
from crmse_cli.train.budget import BudgetConfig


def load_budget(path: Path | None, options: Mapping[str, object]) -> BudgetConfig:
    """BudgetConfig from its defaults, the ``[budget]`` table of ``path`` (if it has one), the options."""
    has_table = path is not None and isinstance(read_config_file(path).get("budget"), dict)
    path = path if has_table else None
    return load_config(
        BudgetConfig, path, section="budget", siblings=("contrastive", "regularize"), **options
    )
