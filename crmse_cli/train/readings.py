"""The readings of the paper's units, chosen explicitly (issue 29; ``docs/method.md``).

The paper gives eta = 4e-4 for its chains and lambda = 0.015 for L_C without saying in which
units its code wrote U, the step and L_C. Three choices decide what those numbers mean here:

- ``lambda_units`` ("eV" or "kcal"): the units of the L_MSE that lambda weighs L_C against
  (:data:`crmse_cli.train.contrastive_config.LAMBDA_UNITS`).
- ``eta_units``: "A2" (default, crmse's form before 2026-12-07): eta is the step of the
  beta-scaled chain x <- x + eta beta F + sqrt(2 eta) xi, in Å². "A2_per_eV": eta is the step of
  the unscaled form x <- x - eta grad U + sqrt(2 eta kT) xi with U and kT in eV, in Å²/eV; it is
  converted here, at the edge, to the beta-scaled step eta kT[eV] (4e-4 Å²/eV is 1.72e-5 Å² at
  500 K). Samplers only ever see the beta-scaled step.
- ``lc_beta``: True (default, crmse's form): L_C = beta (mean U_data - mean U_chains), beta =
  1/kT at ``temperature_K``, dimensionless. False: L_C = mean U_data - mean U_chains in the
  energy unit of the lambda convention (eV for "eV", kcal/mol for "kcal"). The two readings of
  one lambda differ by the factor beta: 23.2 per eV at 500 K (1.0065 per kcal/mol).

Everything here is torch-free: the CLI's help, ``crmse show`` and the trainer read it alike.
"""

from __future__ import annotations

from crmse_cli.units import EV_PER_KCAL_PER_MOL, beta, kT

ETA_UNITS = ("A2", "A2_per_eV")
"""Readings of the chain step: beta-scaled Å² (default) or Å² per eV of the unscaled form."""

LC_ENERGY_UNIT: dict[str, tuple[str, float]] = {"eV": ("eV", EV_PER_KCAL_PER_MOL), "kcal": ("kcal/mol", 1.0)}
"""lambda convention -> (energy unit of L_C without beta, factor from kcal/mol to it)."""


def kT_eV(temperature_K: float) -> float:
    """k_B T in eV."""
    return kT(temperature_K) * EV_PER_KCAL_PER_MOL


def eta_beta_scaled_A2(eta: float, units: str, temperature_K: float) -> float:
    """The chains' step in crmse's beta-scaled form (Å²), from ``eta`` read in ``units``.

    Args:
        eta: the step as given (``eta_A2``).
        units: "A2" (already beta-scaled, Å²) or "A2_per_eV" (Å²/eV of the unscaled form).
        temperature_K: the chains' temperature (kT of the unscaled form's noise).
    """
    if units == "A2":
        return eta
    if units == "A2_per_eV":
        return eta * kT_eV(temperature_K)
    raise ValueError(f"eta_units must be one of {', '.join(ETA_UNITS)}, got {units!r}")


def lc_scale(lc_beta: bool, lambda_units: str, temperature_K: float) -> float:
    """The factor that turns (mean U_data - mean U_chains) in kcal/mol into L_C.

    beta in mol/kcal with ``lc_beta`` (L_C dimensionless), else the conversion from kcal/mol to
    the lambda convention's energy unit (L_C in eV or kcal/mol).
    """
    if lc_beta:
        return beta(temperature_K)
    return LC_ENERGY_UNIT[lambda_units][1]


def lc_reading(lc_beta: bool, lambda_units: str) -> str:
    """L_C as this run writes it, in words."""
    if lc_beta:
        return "L_C = beta (<U>_data - <U>_chains), dimensionless (beta = 1/kT)"
    return f"L_C = <U>_data - <U>_chains in {LC_ENERGY_UNIT[lambda_units][0]} (no beta)"
