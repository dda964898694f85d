"""Issue 29's study arms, one table: the name a run carries (``TAG-ARM-sS``), its title in the
markdown tables (``arms_table.py``) and its short label in the trade-off figure (``pareto.py``)."""

from __future__ import annotations

from typing import NamedTuple


class Arm(NamedTuple):
    title: str
    """In the tables: the arm spelled out with its options."""
    label: str
    """In the figure's legend: short."""


ARMS: dict[str, Arm] = {
    "mse": Arm("MSE parent", "MSE parent"),
    "l0": Arm("λ = 0 control", "λ = 0 control"),
    "c15": Arm("CRMSE 0.015 eV", "CRMSE 0.015 eV"),
    "null15": Arm("null arm 0.015 eV", "null arm 0.015 eV"),
    "pol15u50": Arm("CRMSE 0.015 + MSE polish (50 updates)", "CRMSE 0.015 eV + MSE polish (50)"),
    "pol15": Arm("CRMSE 0.015 + MSE polish (100 updates)", "CRMSE 0.015 eV + MSE polish (100)"),
    "bpol": Arm(
        "CRMSE 0.015 + polish, --force-budget 0.10 --budget-pick first",
        "CRMSE 0.015 eV + polish, budget rule's pick",
    ),
    "bpolh": Arm(
        "the same rule scored on 800 held-out frames (--budget-frames held)",
        "CRMSE 0.015 eV + polish, rule's pick on 800 frames",
    ),
    "bpolh3": Arm(
        "the same rule with up to 300 polish updates (--updates 300 --budget-frames held)",
        "CRMSE 0.015 eV + polish ≤ 300, rule's pick on held frames",
    ),
    "al50": Arm(
        "baseline: active learning, MSE on 200 + 50 frames labelled by xTB where the MD went",
        "baseline: active learning (200 + 50 xTB labels)",
    ),
    "c1e3": Arm("CRMSE 1e-3 eV", "CRMSE 1e-3 eV"),
    "b10": Arm("--force-budget 0.10 (λ 0.015 eV)", "--force-budget 0.10 at 0.015 eV"),
    "b1e3": Arm("--force-budget 0.10 (λ 1e-3 eV)", "--force-budget 0.10 at 1e-3 eV"),
    "ceV": Arm(
        "CRMSE 0.015 eV, eta 4e-4 Å²/eV (--eta-units A2_per_eV: 1.72e-5 Å² beta-scaled)",
        "CRMSE 0.015 eV, eta read per eV",
    ),
    "cpos": Arm(
        "CRMSE 0.015 eV, L_C's data term on the split's 900 positions (--positives split)",
        "CRMSE 0.015 eV, 900 positives",
    ),
    "zbl": Arm(
        "baseline: MSE with a ZBL pair repulsion under the network (--pair-repulsion zbl)",
        "baseline: MSE + ZBL repulsion",
    ),
    "k1": Arm("baseline: MSE on 1000 frames (950 + 50 validation)", "baseline: MSE on 1000 frames"),
}
ALIASES = {"c15r": "c15", "crmse": "c15"}
"""Older or rerun names of the same arm (the 2026-12-02/06 studies called CRMSE ``crmse``)."""
