"""One-line descriptions of a run's settings, read from its recorded config (torch-free).

What ``crmse show`` prints and the stages log, written once: which frames a pretrain run trains
and validates on, whether a wall-clock budget cut it short, and how a regularize run reads its
units (the chain step and the weight of L_C; ``docs/method.md``, "Units: the readings").
"""

from __future__ import annotations

from typing import Any

from crmse_cli.defaults import TEMPERATURE_K
from crmse_cli.names import ETA_BETA_KMAX, STOPPED_BY_TIME_BUDGET
from crmse_cli.registry import compat
from crmse_cli.train import readings
from crmse_cli.units import beta


def frames_line(config: dict[str, Any]) -> str:
    """What a pretrain run trains and validates on, from its run config."""
    n_train, n_val = config.get("n_train_frames"), config.get("n_val_frames")
    where = f"split {config.get('split')}'s training part"
    rule = (
        f"the old rule: val_fraction {config['val_fraction']:g} of the frames drawn"
        if config.get("val_fraction") is not None
        else "not trained on"
    )
    digest = config.get("val_frames_sha256")
    rows = f"; validation rows sha256 {digest}" if digest else ""
    return f"trains on {n_train} frames and validates on {n_val} others of {where} ({rule}{rows})"


def stop_line(config: dict[str, Any], metrics: dict[str, float]) -> str | None:
    """How a pretrain run ended when a wall-clock budget cut it short, else None."""
    if metrics.get(STOPPED_BY_TIME_BUDGET) != 1.0:
        return None
    return (
        f"time budget (max_minutes {config.get('max_minutes'):g}) before max_epochs "
        f"{config.get('max_epochs')}: the schedule had not annealed; rerun without --max-minutes "
        "to reproduce it"
    )


def run_lines(
    run_id: str, kind: str, config: dict[str, Any], metrics: dict[str, float]
) -> list[tuple[str, str]]:
    """(label, line) rows that ``crmse show`` prints for a run of ``kind``.

    Args:
        run_id: the run (named by an error about its config).
        kind: the run's kind ("pretrain", "regularize", ...).
        config: its recorded config.
        metrics: its final metric values by name.
    """
    rows: list[tuple[str, str]] = []
    if kind == "pretrain" and "n_val_frames" in config:
        rows.append(("frames", frames_line(config)))
        stop = stop_line(config, metrics)
        if stop:
            rows.append(("stopped by", stop))
    if kind == "regularize" and "eta_A2" in config:
        rows.append(("chain step", chain_step_line(config, metrics.get(ETA_BETA_KMAX))))
        rows.append(("L_C", lc_line(run_id, config)))
    return rows


def _contrastive(config: dict[str, Any]) -> dict[str, Any]:
    """A regularize run's settings; keys it predates read as the defaults of today's behaviour."""
    c = dict(config.get("contrastive") or {})
    t = float(c.get("temperature_K") or TEMPERATURE_K)
    return {
        "eta_A2": float(config.get("eta_A2") or c.get("eta_A2") or 0.0),
        "eta_units": c.get("eta_units", "A2"),
        "lc_beta": bool(c.get("lc_beta", True)),
        "lambda_units": compat.regularize_contrastive(config)["lambda_units"],
        "temperature_K": t,
        "chain_T_K": float(c.get("chain_temperature_K") or t),
    }


def chain_step_line(config: dict[str, Any], eta_beta_kmax: float | None = None) -> str:
    """The chains' step of a regularize run: as given, its reading, and the effective eta*beta."""
    c = _contrastive(config)
    step = readings.eta_beta_scaled_A2(c["eta_A2"], c["eta_units"], c["chain_T_K"])
    drift = step * beta(c["chain_T_K"])
    given = (
        f"eta {c['eta_A2']:g} Å²/eV of x - eta grad U + sqrt(2 eta kT) xi (U, kT in eV)"
        if c["eta_units"] == "A2_per_eV"
        else f"eta {c['eta_A2']:g} Å² of the beta-scaled x + eta beta F + sqrt(2 eta) xi"
    )
    line = (
        f"{given}: the chains step eta = {step:.4g} Å² (beta-scaled), eta*beta = {drift:.4g} "
        f"Å²/(kcal/mol) at {c['chain_T_K']:g} K"
    )
    if eta_beta_kmax is not None:
        line += f"; eta*beta*k_max = {eta_beta_kmax:.3g} on a training frame"
    return line


def lc_line(run_id: str, config: dict[str, Any]) -> str:
    """How regularize run ``run_id`` weighs L_C: its reading and the weight per kcal/mol of energy gap."""
    c = _contrastive(config)
    internal = compat.lambda_setting(run_id, config).internal
    per_kcal = internal * readings.lc_scale(c["lc_beta"], c["lambda_units"], c["temperature_K"])
    return (
        f"{readings.lc_reading(c['lc_beta'], c['lambda_units'])}; weight against L_MSE[kcal] "
        f"{internal:.4g}, i.e. {per_kcal:.4g} per kcal/mol of <U>_data - <U>_chains"
    )
