"""The physical defaults of the method, declared once (units in the names; METHOD.md's protocol).

Every config dataclass and every function that needs one of these as a default refers to the
name here; the CLI's options default to "unset" and fall through to the config dataclasses, whose
help texts print these values. Changing a default is a one-line change in this module.
"""

from __future__ import annotations

TEMPERATURE_K = 500.0
"""Sampling, chain and reference temperature (the paper's 500 K)."""

TIMESTEP_FS = 0.5
"""BAOAB time step of molecular dynamics."""

FRICTION_PER_FS = 0.01
"""Langevin friction gamma (ASE's suggested 0.01/fs)."""

ETA_A2 = 4e-4
"""Step size of the overdamped chains (ULA, MALA), Å^2 (the paper's 0.0004)."""

LAMBDA = 0.015
"""Weight of the contrastive term in the eV convention (the paper's operating point)."""

COLLAPSE_MARGIN_A = 0.3
"""A frame is outside the reference support when a pair comes closer than its reference minimum
minus this margin (METHOD.md, "Stability")."""

BOND_TOL_A = 0.5
"""A replica has broken a bond when a bond's length leaves its reference mean by more than this."""

ENERGY_WEIGHT = 0.05
"""w_E of L_MSE, (kcal/mol)^-2: pretraining's and CRMSE's."""

FORCE_WEIGHT = 1.0
"""w_F of L_MSE, (kcal/mol/Å)^-2: pretraining's and CRMSE's."""

PRETRAIN_N_VAL = 100
"""Validation frames of pretraining: labelled frames of the split's training part it does not
train on (issue 29: at least 100, so the best epoch is not picked on noise)."""

PRETRAIN_MAX_EPOCHS = 1000
"""Epochs of pretraining's cosine schedule (the measurement: ``PretrainConfig``'s docstring)."""
