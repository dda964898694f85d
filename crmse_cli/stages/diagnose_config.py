"""The settings of `crmse diagnose`: one frozen dataclass, torch-free so the CLI's help reads it."""

from __future__ import annotations

from dataclasses import dataclass

from crmse_cli.settings import setting
from crmse_cli.validate import COUNT_RANGE, SEED_RANGE, TEMPERATURE_RANGE, check_config


@dataclass(frozen=True)
class DiagnoseConfig:
    """Settings of ``crmse diagnose``; each declared on its field.

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

    soft_modes: int = setting(2, range="[1, 1e6]", help="Softest MSE modes summarised (torsions).")
    stiff_modes: int = setting(2, range="[1, 1e6]", help="Stiffest MSE modes summarised.")
    mass_weighted: bool = setting(
        False, help="Modes in mass-weighted coordinates instead of plain Cartesian ones."
    )
    temperature_K: float | None = setting(
        None, range=TEMPERATURE_RANGE, help="kT unit of the collapse lift.", unset="the samples' temperature"
    )
    max_test_frames: int = setting(500, range=COUNT_RANGE, help="Test frames for the force slopes.")
    max_collapsed_frames: int = setting(
        500, range=COUNT_RANGE, help="Collapsed frames lifted (a seeded random pick)."
    )
    fmax: float = setting(1e-4, range="(0, 1e6]", help="Relaxation threshold, kcal/mol/Å.")
    seed: int = setting(0, range=SEED_RANGE, help="Seed of the frame picks.")
    device: str = setting("cpu", help="cpu, cuda (the current GPU) or cuda:N (GPU N).")

    def __post_init__(self) -> None:
        check_config(self)  # types, finiteness and ranges declared on the fields: crmse_cli/validate.py
