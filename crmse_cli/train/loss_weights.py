"""The weights of L_MSE: torch-free, so the settings classes (and the CLI's ``--help``) read them."""

from __future__ import annotations

from dataclasses import dataclass

from crmse_cli.defaults import ENERGY_WEIGHT, FORCE_WEIGHT
from crmse_cli.errors import CrmseError

DEFAULT_ENERGY_WEIGHT = ENERGY_WEIGHT
"""w_E in (kcal/mol)^-2 (:mod:`crmse_cli.defaults`)."""
DEFAULT_FORCE_WEIGHT = FORCE_WEIGHT
"""w_F in (kcal/mol/Å)^-2 (:mod:`crmse_cli.defaults`)."""


@dataclass(frozen=True)
class LossWeights:
    """Weights of the energy and force terms of L_MSE.

    Attributes:
        energy: w_E in (kcal/mol)^-2 (default 0.05).
        forces: w_F in (kcal/mol/Å)^-2 (default 1.0).
    """

    energy: float = DEFAULT_ENERGY_WEIGHT
    forces: float = DEFAULT_FORCE_WEIGHT

    def __post_init__(self) -> None:
        if not (self.energy >= 0.0 and self.forces >= 0.0) or self.energy + self.forces <= 0.0:
            raise CrmseError(
                f"loss weights must be >= 0 and not both 0, got energy {self.energy}, forces {self.forces}"
            )
