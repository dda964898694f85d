"""One-line descriptions of a run's settings, read from its recorded config (torch-free).

What ``crmse show`` prints and the stages log, written once: which frames a pretrain run trains
and validates on, whether a wall-clock budget cut it short, and how a regularize run reads its
units (the chain step and the weight of L_C; ``docs/method.md``, "Units: the readings").
"""

from __future__ import annotations

from collections.abc import Mapping

from crmse_cli.names import ETA_BETA_KMAX, STOPPED_BY_TIME_BUDGET
from crmse_cli.registry.run_records import PretrainRecord, RegularizeRecord
from crmse_cli.train import readings
from crmse_cli.units import beta


def frames_line(run: PretrainRecord) -> str:
    """What a pretrain run trains and validates on."""
    where = f"split {run.split}'s training part"
    val_fraction = run.settings.val_fraction
    rule = (
        f"the old rule: val_fraction {val_fraction:g} of the frames drawn"
        if val_fraction is not None
        else "not trained on"
    )
    digest = run.val_frames_sha256
    rows = f"; validation rows sha256 {digest}" if digest else ""
    return (
        f"trains on {run.n_train_frames} frames and validates on {run.n_val_frames} others of "
        f"{where} ({rule}{rows})"
    )


def stop_line(run: PretrainRecord, metrics: Mapping[str, float]) -> str | None:
    """How a pretrain run ended when a wall-clock budget cut it short, else None."""
    if metrics.get(STOPPED_BY_TIME_BUDGET) != 1.0:
        return None
    s = run.settings
    minutes = "None" if s.max_minutes is None else f"{s.max_minutes:g}"
    return (
        f"time budget (max_minutes {minutes}) before max_epochs "
        f"{s.max_epochs}: the schedule had not annealed; rerun without --max-minutes "
        "to reproduce it"
    )


def run_lines(
    run_id: str, kind: str, config: Mapping[str, object], metrics: Mapping[str, float]
) -> list[tuple[str, str]]:
    """(label, line) rows that ``crmse show`` prints for a run of ``kind``.

    Args:
        run_id: the run (named by an error about its config).
        kind: the run's kind ("pretrain", "regularize", ...).
        config: its recorded config (read through :mod:`crmse_cli.registry.run_records`).
        metrics: its final metric values by name.
    """
    rows: list[tuple[str, str]] = []
    if kind == "pretrain" and "n_val_frames" in config:  # trained here, since 2026-11-25
        pretrain = PretrainRecord.of(run_id, config)
        rows.append(("frames", frames_line(pretrain)))
        stop = stop_line(pretrain, metrics)
        if stop:
            rows.append(("stopped by", stop))
    if kind == "regularize" and "eta_A2" in config:  # started (a queued sweep run records options)
        regularize = RegularizeRecord.of(run_id, config)
        rows.append(("chain step", chain_step_line(regularize, metrics.get(ETA_BETA_KMAX))))
        rows.append(("L_C", lc_line(regularize)))
    return rows


def chain_step_line(run: RegularizeRecord, eta_beta_kmax: float | None = None) -> str:
    """The chains' step of a regularize run: as given, its reading, and the effective eta*beta."""
    c = run.contrastive
    step = readings.eta_beta_scaled_A2(c.eta_A2, c.eta_units, c.chain_T_K)
    drift = step * beta(c.chain_T_K)
    given = (
        f"eta {c.eta_A2:g} Å²/eV of x - eta grad U + sqrt(2 eta kT) xi (U, kT in eV)"
        if c.eta_units == "A2_per_eV"
        else f"eta {c.eta_A2:g} Å² of the beta-scaled x + eta beta F + sqrt(2 eta) xi"
    )
    line = (
        f"{given}: the chains step eta = {step:.4g} Å² (beta-scaled), eta*beta = {drift:.4g} "
        f"Å²/(kcal/mol) at {c.chain_T_K:g} K"
    )
    if eta_beta_kmax is not None:
        line += f"; eta*beta*k_max = {eta_beta_kmax:.3g} on a training frame"
    return line


def lc_line(run: RegularizeRecord) -> str:
    """How a regularize run weighs L_C: its reading and the weight per kcal/mol of energy gap."""
    c = run.contrastive
    internal = run.lambda_.internal
    per_kcal = internal * readings.lc_scale(c.lc_beta, c.lambda_units, c.temperature_K)
    return (
        f"{readings.lc_reading(c.lc_beta, c.lambda_units)}; weight against L_MSE[kcal] "
        f"{internal:.4g}, i.e. {per_kcal:.4g} per kcal/mol of <U>_data - <U>_chains"
    )
