"""The settings of `crmse regularize`: one frozen dataclass, torch-free so the CLI's help reads it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crmse_cli.defaults import ENERGY_WEIGHT, ETA_A2, FORCE_WEIGHT, LAMBDA, TEMPERATURE_K
from crmse_cli.train import readings
from crmse_cli.train.lambda_schedule import LAMBDA_CONTROLS
from crmse_cli.train.readings import ETA_UNITS
from crmse_cli.units import KCAL_PER_MOL_PER_EV
from crmse_cli.validate import check_config

if TYPE_CHECKING:
    from crmse_cli.train.losses import LossWeights

CHAIN_SAMPLERS = ("ula", "mala")
"""Samplers of the persistent chains (:mod:`crmse_cli.sampling.chains`)."""
LAMBDA_UNITS: dict[str, float] = {"eV": KCAL_PER_MOL_PER_EV**2, "kcal": 1.0}
"""lambda convention -> factor that turns lambda into the weight of L_C against L_MSE in
(kcal/mol, kcal/mol/Å) units: "eV" 531.8 (the paper's and the field's), "kcal" 1."""
INITS = ("raw", "ema")
"""Starting points of CRMSE: the pretrain run's raw weights + Adam moments, or its EMA weights."""
CHAIN_SOURCES = ("model", "data")
"""Negatives of L_C: persistent chains sampled from the model, or fresh random positives (null arm)."""
POSITIVES = ("labelled", "split")
"""Data term of L_C: the labelled training frames, or every position of the split's training part."""
OPTIMIZER_INITS = ("inherit", "fresh")
"""Adam state at the start (init raw): the parent's moments, or a fresh Adam."""


def effective_lambda(lambda_: float, units: str) -> float:
    """Weight of L_C against L_MSE computed in kcal/mol and kcal/mol/Å."""
    if units not in LAMBDA_UNITS:
        raise ValueError(f"lambda_units must be one of {', '.join(LAMBDA_UNITS)}, got {units!r}")
    return lambda_ * LAMBDA_UNITS[units]


@dataclass(frozen=True)
class ContrastiveConfig:
    """Hyper-parameters of CRMSE post-training (units in the names).

    Attributes:
        lambda_: weight of the contrastive term in the convention ``lambda_units`` (paper's
            operating point 0.015 in eV; 0 is the control: the same fine-tuning without L_C).
        lambda_units: "eV" (default; L_MSE read in eV and eV/Å, as the paper and the field's
            trainers: the effective weight against our kcal loss is 531.8 lambda) or "kcal"
            (lambda against L_MSE in kcal/mol and kcal/mol/Å, the 2026-12-01 study).
        lc_beta: True (default): L_C = beta (<U>_data - <U>_chains), dimensionless; False: L_C =
            <U>_data - <U>_chains in the energy unit of ``lambda_units`` (eV or kcal/mol). In eV
            the two readings of one lambda differ by beta = 23.2/eV at 500 K
            (:mod:`crmse_cli.train.readings`).
        eta_A2: step size eta of the chains (paper: 0.0004), read in ``eta_units``.
        eta_units: "A2" (default): eta in Å² of the beta-scaled step x + eta beta F + sqrt(2 eta)
            xi; "A2_per_eV": eta in Å²/eV of the unscaled step x - eta grad U + sqrt(2 eta kT) xi
            (U, kT in eV), converted to eta kT[eV] beta-scaled Å² at the chain temperature.
        steps_per_update: K, chain steps before each parameter update (paper 200).
        n_chains: C, the number of persistent chains.
        n_updates: number of parameter updates.
        temperature_K: temperature of the model's Boltzmann distribution (beta = 1/kT in L_C).
        chain_temperature_K: temperature the chains sample at (None: ``temperature_K``); hotter
            chains explore further from the basin.
        chain_sampler: "ula" (the paper's; biased on stiff modes at eta = 4e-4) or "mala"
            (Metropolis-adjusted: exact at any eta).
        init: "raw" (default; the pretrain run's raw, un-averaged weights and its Adam moments,
            from its ``last`` checkpoint: the paper post-trains "from the same MSE-pretrained
            weights and momentum") or "ema" (its best EMA weights and a fresh Adam; before
            2026-12-02 the only choice).
        lr: Adam learning rate after warm-up. 3e-5: a fresh Adam at 1e-4 pushed the validation
            energy MAE from 0.69 to 7.2 kcal/mol in one update in the first trial, and 3e-5 with a
            20-update warm-up acted at lambda = 0.015 (eV) in the 2026-12-01 probe. Related
            methods take far larger steps (StABlE: SGD 1e-3; relative-entropy training: Adam
            3e-3); ``--lr`` is the knob to try.
        warmup_updates: linear learning-rate warm-up from lr/warmup_updates to lr (0: none).
        batch_size: training frames per update (for both L_MSE and the data term of L_C).
        energy_weight: w_E of L_MSE in (kcal/mol)^-2; None: the pretraining run's (default 0.05).
        force_weight: w_F of L_MSE in (kcal/mol/Å)^-2; None: the pretraining run's (default 1).
        reset_fraction: share of chains reset to random training frames every update (0 = only
            broken chains are reset).
        fly_apart_A: a chain whose atom lies farther than this from the chain's centroid is reset.
        grad_clip: gradient-norm clip of the total loss (0: off, as in pretraining).
        tconf_every: measure the chains' configurational temperature every this many updates
            (exact Laplacian: 3N backward passes; 0: never).
        seed: seed of chain noise, batch order and resets.

    Study arms (docs/method.md, "Study arms"; each default is the behaviour before them):
        chain_source: "model" (default: persistent chains sampled from the model) or "data" (the
            null arm: the negatives are fresh random positives drawn every update, no sampler
            steps, so L_C has zero mean and measures the pure noise cost).
        positives: "labelled" (default: the data term of L_C on the labelled training frames) or
            "split" (every position of the split's training part less the parent's validation
            frames, labelled or not; L_MSE stays on the labelled frames).
        optimizer_init: "inherit" (default: with init raw, the parent's Adam moments) or "fresh"
            (init raw's weights with a fresh Adam). With init ema Adam is always fresh.
        ema_decay: decay of an exponential moving average of the weights (0: off). When on,
            validation, test metrics and the saved models use the averaged weights.
        lambda_decay_after: once the chains' outside-support share has stayed <=
            ``lambda_decay_threshold`` for this many consecutive updates, lambda falls linearly
            to 0 over ``lambda_decay_updates`` updates (0: never).
        lambda_decay_threshold: the outside share counted as "repaired".
        lambda_decay_updates: length of the linear decay, in updates.
        lambda_control: "fixed" (default) or "budget": after each validation lambda is multiplied
            by ``lambda_control_up`` while the validation force MAE is within (1 + force_budget)
            x the parent's, else divided by ``lambda_control_down``; the multiplier stays in
            [1/``lambda_control_range``, ``lambda_control_range``].
    """

    lambda_: float = LAMBDA
    lambda_units: str = "eV"
    lc_beta: bool = True
    eta_A2: float = ETA_A2
    eta_units: str = "A2"
    steps_per_update: int = 200
    n_chains: int = 64
    n_updates: int = 400
    temperature_K: float = TEMPERATURE_K
    chain_temperature_K: float | None = None
    chain_sampler: str = "ula"
    init: str = "raw"
    lr: float = 3e-5
    warmup_updates: int = 20
    batch_size: int = 32
    energy_weight: float | None = None
    force_weight: float | None = None
    reset_fraction: float = 0.0
    fly_apart_A: float = 12.0
    grad_clip: float = 100.0
    tconf_every: int = 10
    seed: int = 0
    chain_source: str = "model"
    positives: str = "labelled"
    optimizer_init: str = "inherit"
    ema_decay: float = 0.0
    lambda_decay_after: int = 0
    lambda_decay_threshold: float = 0.02
    lambda_decay_updates: int = 100
    lambda_control: str = "fixed"
    lambda_control_up: float = 1.25
    lambda_control_down: float = 2.0
    lambda_control_range: float = 100.0

    def __post_init__(self) -> None:
        check_config(self)  # types, finiteness and ranges of every field: crmse_cli/validate.py
        if not (self.lambda_ >= 0 and math.isfinite(self.lambda_)):
            raise ValueError(f"lambda_ must be finite and >= 0, got {self.lambda_}")
        effective_lambda(self.lambda_, self.lambda_units)
        for name in ("eta_A2", "temperature_K", "lr", "fly_apart_A"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be finite and > 0, got {value}")
        if self.chain_temperature_K is not None and not (
            self.chain_temperature_K > 0 and math.isfinite(self.chain_temperature_K)
        ):
            raise ValueError(f"chain_temperature_K must be finite and > 0, got {self.chain_temperature_K}")
        for name in ("steps_per_update", "n_chains", "n_updates", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("warmup_updates", "tconf_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not 0.0 <= self.reset_fraction <= 1.0:
            raise ValueError("reset_fraction must lie in [0, 1]")
        if not (self.grad_clip >= 0 and math.isfinite(self.grad_clip)):
            raise ValueError(f"grad_clip must be finite and >= 0 (0: off), got {self.grad_clip}")
        if self.chain_sampler not in CHAIN_SAMPLERS:
            raise ValueError(f"chain_sampler must be one of {', '.join(CHAIN_SAMPLERS)}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}")
        for name, allowed in (
            ("eta_units", ETA_UNITS),
            ("chain_source", CHAIN_SOURCES),
            ("positives", POSITIVES),
            ("optimizer_init", OPTIMIZER_INITS),
            ("lambda_control", LAMBDA_CONTROLS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("energy_weight", "force_weight"):
            value = getattr(self, name)
            if value is not None and not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")

    @property
    def lambda_internal(self) -> float:
        """Weight of L_C against L_MSE computed in kcal/mol and kcal/mol/Å."""
        return effective_lambda(self.lambda_, self.lambda_units)

    @property
    def eta_internal_A2(self) -> float:
        """The chains' step in crmse's beta-scaled form, Å² (``eta_A2`` read in ``eta_units``)."""
        return readings.eta_beta_scaled_A2(self.eta_A2, self.eta_units, self.chain_T_K)

    @property
    def lc_scale(self) -> float:
        """Factor of (<U>_data - <U>_chains) in kcal/mol in L_C: beta, or 1/(energy unit)."""
        return readings.lc_scale(self.lc_beta, self.lambda_units, self.temperature_K)

    @property
    def weights(self) -> LossWeights:
        """w_E and w_F of L_MSE (pretraining's defaults where unset)."""
        from crmse_cli.train.losses import LossWeights  # torch: imported when training

        return LossWeights(
            energy=ENERGY_WEIGHT if self.energy_weight is None else self.energy_weight,
            forces=FORCE_WEIGHT if self.force_weight is None else self.force_weight,
        )

    @property
    def chain_T_K(self) -> float:
        """The temperature the chains sample at."""
        return self.temperature_K if self.chain_temperature_K is None else self.chain_temperature_K
