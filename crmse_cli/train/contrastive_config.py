"""The settings of `crmse regularize`: one frozen dataclass, torch-free so the CLI's help reads it."""

from __future__ import annotations

from dataclasses import dataclass

from crmse_cli.defaults import ENERGY_WEIGHT, ETA_A2, FORCE_WEIGHT, LAMBDA, TEMPERATURE_K
from crmse_cli.sampling.kinds import DEFAULT_CHAIN_SAMPLER, chain_sampler_names, described
from crmse_cli.settings import setting
from crmse_cli.train import readings
from crmse_cli.train.lambda_schedule import LAMBDA_CONTROLS
from crmse_cli.train.loss_weights import LossWeights
from crmse_cli.train.readings import ETA_UNITS
from crmse_cli.units import KCAL_PER_MOL_PER_EV
from crmse_cli.validate import COUNT_RANGE, SEED_RANGE, TEMPERATURE_RANGE, ConfigError, check_config

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
TERM, CHAINS, OPTIMIZER, ARMS = "Contrastive term", "Chains", "Optimizer", "Study arms"
"""``--help`` panels of ``crmse regularize`` (its own options stay under "Options")."""


def effective_lambda(lambda_: float, units: str) -> float:
    """Weight of L_C against L_MSE computed in kcal/mol and kcal/mol/Å."""
    if units not in LAMBDA_UNITS:
        raise ConfigError(f"lambda_units must be one of {', '.join(LAMBDA_UNITS)}, got {units!r}")
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
        chain_sampler: a registered chain sampler (:func:`crmse_cli.sampling.kinds.chain_sampler_names`):
            "ula" (the paper's; biased on stiff modes at eta = 4e-4) or "mala" (Metropolis-adjusted:
            exact at any eta).
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

    lambda_: float = setting(
        LAMBDA, range="[0, 1e6]", help="Weight of the contrastive term (0: the control).", panel=TERM
    )
    lambda_units: str = setting(
        "eV",
        choices=tuple(LAMBDA_UNITS),
        panel=TERM,
        help="eV: lambda weighs L_C against L_MSE in eV, eV/Å (the paper's; 531.8x our kcal loss); "
        "kcal: against L_MSE in kcal/mol, kcal/mol/Å.",
    )
    lc_beta: bool = setting(
        True,
        flag="--lc-beta/--no-lc-beta",
        panel=TERM,
        help="L_C = beta (<U>_data - <U>_chains), dimensionless; --no-lc-beta: without beta, in the "
        "--lambda-units energy (23x less weight per eV at 500 K).",
    )
    eta_A2: float = setting(
        ETA_A2, range="(0, 100]", help="Chain step size, read in --eta-units.", panel=CHAINS
    )
    eta_units: str = setting(
        "A2",
        choices=ETA_UNITS,
        panel=CHAINS,
        help="A2: Å² of the beta-scaled step x + eta beta F + sqrt(2 eta) xi; A2_per_eV: Å²/eV of "
        "x - eta grad U + sqrt(2 eta kT) xi (U, kT in eV; 4e-4 is 1.72e-5 Å² at 500 K).",
    )
    steps_per_update: int = setting(
        200, range="[1, 1e9]", help="K: chain steps per parameter update.", panel=CHAINS
    )
    n_chains: int = setting(
        64, range="[1, 1e6]", flag="--chains", help="C: number of persistent chains.", panel=CHAINS
    )
    n_updates: int = setting(
        400, range=COUNT_RANGE, flag="--updates", help="Number of parameter updates.", panel=OPTIMIZER
    )
    temperature_K: float = setting(
        TEMPERATURE_K, range=TEMPERATURE_RANGE, help="Temperature of the Boltzmann term.", panel=TERM
    )
    chain_temperature_K: float | None = setting(
        None,
        range=TEMPERATURE_RANGE,
        help="Temperature the chains sample at.",
        unset="--temperature-K",
        panel=CHAINS,
    )
    chain_sampler: str = setting(
        DEFAULT_CHAIN_SAMPLER,
        choices=chain_sampler_names,
        help=described(chain_sampler_names),
        panel=CHAINS,
    )
    init: str = setting(
        "raw",
        choices=INITS,
        panel=OPTIMIZER,
        help="raw: the pretrain run's raw weights and Adam moments (the paper's); "
        "ema: its best EMA weights and a fresh Adam.",
    )
    lr: float = setting(3e-5, range="(0, 1e3]", help="Adam learning rate after warm-up.", panel=OPTIMIZER)
    warmup_updates: int = setting(
        20,
        range="[0, 1e12]",
        flag="--warmup",
        help="Linear learning-rate warm-up, in updates.",
        panel=OPTIMIZER,
    )
    batch_size: int = setting(32, range="[1, 1e9]", help="Training frames per update.", panel=OPTIMIZER)
    energy_weight: float | None = setting(
        None,
        range="[0, 1e300]",
        help="w_E of L_MSE, (kcal/mol)^-2.",
        unset="the pretrain run's",
        panel=OPTIMIZER,
    )
    force_weight: float | None = setting(
        None,
        range="[0, 1e300]",
        help="w_F of L_MSE, (kcal/mol/Å)^-2.",
        unset="the pretrain run's",
        panel=OPTIMIZER,
    )
    reset_fraction: float = setting(
        0.0, range="[0, 1]", help="Share of chains reset to training frames each update.", panel=CHAINS
    )
    fly_apart_A: float = setting(
        12.0, range="(0, 1e6]", help="A chain with an atom this far from its centroid is reset, Å.", cli=False
    )
    grad_clip: float = setting(
        100.0, range="[0, 1e300]", help="Gradient-norm clip, 0 = off.", panel=OPTIMIZER
    )
    tconf_every: int = setting(
        10,
        range="[0, 1e12]",
        help="Updates between the chains' configurational temperatures (0: never).",
        cli=False,
    )
    seed: int = setting(0, range=SEED_RANGE, help="Seed of chains, batches and resets.")
    chain_source: str = setting(
        "model",
        choices=CHAIN_SOURCES,
        panel=ARMS,
        help="model: persistent chains sampled from the model; data: the null arm, fresh random "
        "positives as negatives every update (no sampling, L_C of zero mean).",
    )
    positives: str = setting(
        "labelled",
        choices=POSITIVES,
        panel=ARMS,
        help="Data term of L_C: labelled (the L_MSE frames) or split (every position of the split's "
        "training part less the validation frames; L_MSE stays on the labelled).",
    )
    optimizer_init: str = setting(
        "inherit",
        choices=OPTIMIZER_INITS,
        panel=ARMS,
        help="With --init raw: inherit the parent's Adam moments, or a fresh Adam.",
    )
    ema_decay: float = setting(
        0.0,
        range="[0, 1)",
        panel=ARMS,
        help="EMA of the weights (0 = off); validation, test and saved models use it.",
    )
    lambda_decay_after: int = setting(
        0,
        range="[0, 1e12]",
        panel=ARMS,
        help="Decay lambda linearly to 0 once chains_outside stayed <= --lambda-decay-threshold for "
        "this many updates (0 = never).",
    )
    lambda_decay_threshold: float = setting(
        0.02, range="[0, 1]", panel=ARMS, help="Outside-support share counted as repaired."
    )
    lambda_decay_updates: int = setting(
        100, range=COUNT_RANGE, panel=ARMS, help="Updates of the linear decay to 0."
    )
    lambda_control: str = setting(
        "fixed",
        choices=LAMBDA_CONTROLS,
        panel=ARMS,
        help="fixed, or budget: after each validation lambda goes up while the validation force MAE "
        "is within --force-budget of the parent's, down when over.",
    )
    lambda_control_up: float = setting(
        1.25, range="[1, 1e3]", panel=ARMS, help="Budget mode: factor under budget."
    )
    lambda_control_down: float = setting(
        2.0, range="[1, 1e3]", panel=ARMS, help="Budget mode: divisor over budget."
    )
    lambda_control_range: float = setting(
        100.0, range="[1, 1e12]", panel=ARMS, help="Budget mode: lambda stays within this factor of --lambda."
    )

    def __post_init__(self) -> None:
        check_config(self)  # types, ranges and choices declared on the fields: crmse_cli/validate.py

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
        return LossWeights(
            energy=ENERGY_WEIGHT if self.energy_weight is None else self.energy_weight,
            forces=FORCE_WEIGHT if self.force_weight is None else self.force_weight,
        )

    @property
    def chain_T_K(self) -> float:
        """The temperature the chains sample at."""
        return self.temperature_K if self.chain_temperature_K is None else self.chain_temperature_K
