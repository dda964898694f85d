"""The settings of `crmse diagnose`: one frozen dataclass, torch-free so the CLI's help reads it."""

from __future__ import annotations

from dataclasses import dataclass

from crmse_cli.validate import check_config


@dataclass(frozen=True)
class DiagnoseConfig:
    """Settings of ``crmse diagnose``; ranges in :data:`crmse_cli.validate.RANGES`.

    Attributes:
        soft_modes: number of softest MSE modes summarised (ethanol: the 2 torsions), >= 1.
        stiff_modes: number of stiffest MSE modes summarised (X-H stretches), >= 1.
        mass_weighted: modes in mass-weighted coordinates (eigenvalues omega^2,
            kcal/mol/Å^2/amu) instead of plain Cartesian ones (kcal/mol/Å^2, the default).
        temperature_K: kT unit of the collapse lift, K, > 0; None: the MSE samples' temperature.
        max_test_frames: test frames for the force slopes (first ones of the split), >= 1.
        max_collapsed_frames: collapsed frames evaluated (random pick, seeded), >= 1.
        fmax: relaxation threshold, kcal/mol/Å, > 0.
        seed: seed of the frame picks.
        device: cpu or cuda.
    """

    soft_modes: int = 2
    stiff_modes: int = 2
    mass_weighted: bool = False
    temperature_K: float | None = None
    max_test_frames: int = 500
    max_collapsed_frames: int = 500
    fmax: float = 1e-4
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_config(self)  # types, finiteness and ranges: crmse_cli/validate.py
