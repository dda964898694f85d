"""`crmse regularize`: CRMSE post-training with persistent Langevin chains."""

from __future__ import annotations

from pathlib import Path

import typer

from crmse_cli.cli import arm_options as arm
from crmse_cli.cli.budget_options import (
    BudgetEveryOption,
    ForceBudgetOption,
    ScreenReplicasOption,
    ScreenStepsOption,
    ScreenTemperatureOption,
    budget_options,
    load_budget,
)
from crmse_cli.cli.common import (
    DeviceOption,
    RunNameOption,
    TrustCodeOption,
    emit_result,
    set_threads,
    state,
    workspace,
)
from crmse_cli.cli.conventions import choice
from crmse_cli.config import load_config, with_default
from crmse_cli.train.contrastive_config import CHAIN_SAMPLERS, INITS, LAMBDA_UNITS, ContrastiveConfig
from crmse_cli.train.readings import ETA_UNITS

TERM, CHAINS, OPTIMIZER = "Contrastive term", "Chains", "Optimizer"
"""``--help`` panels; the run's own options (source, config, device, name) stay under "Options",
the study arms and the force budget have theirs (arm_options.py, budget_options.py)."""


def _h(text: str, field: str) -> str:
    return with_default(text, ContrastiveConfig, field)


def regularize_command(
    ctx: typer.Context,
    source: str | None = typer.Option(None, "--from", help="Pretrain run (id or name) or checkpoint file."),
    lambda_: float | None = typer.Option(
        None,
        "--lambda",
        help=_h("Weight of the contrastive term (0: the control).", "lambda_"),
        rich_help_panel=TERM,
    ),
    lambda_units: str | None = choice(
        LAMBDA_UNITS,
        "--lambda-units",
        rich_help_panel=TERM,
        help="eV: lambda weighs L_C against L_MSE in eV, eV/Å (the paper's; 531.8x our kcal loss); "
        "kcal: against L_MSE in kcal/mol, kcal/mol/Å." + _h("", "lambda_units"),
    ),
    lc_beta: bool | None = typer.Option(
        None,
        "--lc-beta/--no-lc-beta",
        rich_help_panel=TERM,
        help="L_C = beta (<U>_data - <U>_chains), dimensionless; --no-lc-beta: without beta, in the "
        "--lambda-units energy (23x less weight per eV at 500 K)." + _h("", "lc_beta"),
    ),
    eta_A2: float | None = typer.Option(
        None,
        "--eta-A2",
        help=_h("Chain step size, read in --eta-units.", "eta_A2"),
        rich_help_panel=CHAINS,
    ),
    eta_units: str | None = choice(
        ETA_UNITS,
        "--eta-units",
        rich_help_panel=CHAINS,
        help="A2: Å² of the beta-scaled step x + eta beta F + sqrt(2 eta) xi; A2_per_eV: Å²/eV of "
        "x - eta grad U + sqrt(2 eta kT) xi (U, kT in eV; 4e-4 is 1.72e-5 Å² at 500 K)."
        + _h("", "eta_units"),
    ),
    steps_per_update: int | None = typer.Option(
        None,
        "--steps-per-update",
        help=_h("K: chain steps per parameter update.", "steps_per_update"),
        rich_help_panel=CHAINS,
    ),
    chains: int | None = typer.Option(
        None, help=_h("C: number of persistent chains.", "n_chains"), rich_help_panel=CHAINS
    ),
    updates: int | None = typer.Option(
        None, help=_h("Number of parameter updates.", "n_updates"), rich_help_panel=OPTIMIZER
    ),
    temperature_K: float | None = typer.Option(
        None,
        "--temperature-K",
        help=_h("Temperature of the Boltzmann term.", "temperature_K"),
        rich_help_panel=TERM,
    ),
    chain_temperature_K: float | None = typer.Option(
        None,
        "--chain-temperature-K",
        help="Temperature the chains sample at \\[default: --temperature-K].",
        rich_help_panel=CHAINS,
    ),
    chain_sampler: str | None = choice(
        CHAIN_SAMPLERS,
        "--chain-sampler",
        help=_h("ula (the paper's) or mala (Metropolis-adjusted, exact).", "chain_sampler"),
        rich_help_panel=CHAINS,
    ),
    init: str | None = choice(
        INITS,
        rich_help_panel=OPTIMIZER,
        help="raw: the pretrain run's raw weights and Adam moments (the paper's); "
        "ema: its best EMA weights and a fresh Adam." + _h("", "init"),
    ),
    lr: float | None = typer.Option(
        None, help=_h("Adam learning rate after warm-up.", "lr"), rich_help_panel=OPTIMIZER
    ),
    warmup: int | None = typer.Option(
        None,
        help=_h("Linear learning-rate warm-up, in updates.", "warmup_updates"),
        rich_help_panel=OPTIMIZER,
    ),
    batch_size: int | None = typer.Option(
        None, help=_h("Training frames per update.", "batch_size"), rich_help_panel=OPTIMIZER
    ),
    reset_fraction: float | None = typer.Option(
        None,
        help=_h("Share of chains reset to training frames each update.", "reset_fraction"),
        rich_help_panel=CHAINS,
    ),
    grad_clip: float | None = typer.Option(
        None, help=_h("Gradient-norm clip, 0 = off.", "grad_clip"), rich_help_panel=OPTIMIZER
    ),
    energy_weight: float | None = typer.Option(
        None,
        help="w_E of L_MSE, (kcal/mol)^-2 \\[default: the pretrain run's].",
        rich_help_panel=OPTIMIZER,
    ),
    force_weight: float | None = typer.Option(
        None,
        help="w_F of L_MSE, (kcal/mol/Å)^-2 \\[default: the pretrain run's].",
        rich_help_panel=OPTIMIZER,
    ),
    seed: int | None = typer.Option(None, help=_h("Seed of chains, batches and resets.", "seed")),
    chain_source: arm.ChainSourceOption = None,
    positives: arm.PositivesOption = None,
    optimizer_init: arm.OptimizerInitOption = None,
    ema_decay: arm.EmaDecayOption = None,
    lambda_decay_after: arm.LambdaDecayAfterOption = None,
    lambda_decay_threshold: arm.LambdaDecayThresholdOption = None,
    lambda_decay_updates: arm.LambdaDecayUpdatesOption = None,
    lambda_control: arm.LambdaControlOption = None,
    lambda_control_up: arm.LambdaControlUpOption = None,
    lambda_control_down: arm.LambdaControlDownOption = None,
    lambda_control_range: arm.LambdaControlRangeOption = None,
    force_budget: ForceBudgetOption = None,
    budget_every: BudgetEveryOption = None,
    screen_replicas: ScreenReplicasOption = None,
    screen_steps: ScreenStepsOption = None,
    screen_temperature_K: ScreenTemperatureOption = None,
    config: Path | None = typer.Option(
        None, help="TOML file with a \\[contrastive] table of settings (options override)."
    ),
    device: DeviceOption = "cpu",
    name: RunNameOption = None,
    resume: str | None = typer.Option(None, help="Continue an interrupted regularize run exactly."),
    from_model: Path | None = typer.Option(
        None, "--from-model", help="A mace-torch .model file (with --data): imported as a model run first."
    ),
    data_file: Path | None = typer.Option(
        None, "--data", help="Extended-XYZ training file of --from-model (eV, eV/Å)."
    ),
    energy_key: str | None = typer.Option(None, "--energy-key", help="--data's energy key, e.g. REF_energy."),
    forces_key: str | None = typer.Option(None, "--forces-key", help="--data's forces, e.g. REF_forces."),
    trust_code: TrustCodeOption = False,
) -> None:
    """Post-train a potential with CRMSE: L = L_MSE + lambda * beta * (<U>_data - <U>_chains)."""
    from crmse_cli.stages.regularize import RegularizeConfig, regularize

    st = state(ctx)
    ws = workspace(st, trust_code=trust_code)
    set_threads(st.threads)
    options = dict(
        lambda_=lambda_,
        lambda_units=lambda_units,
        lc_beta=lc_beta,
        eta_A2=eta_A2,
        eta_units=eta_units,
        steps_per_update=steps_per_update,
        n_chains=chains,
        n_updates=updates,
        temperature_K=temperature_K,
        chain_temperature_K=chain_temperature_K,
        chain_sampler=chain_sampler,
        init=init,
        lr=lr,
        warmup_updates=warmup,
        batch_size=batch_size,
        reset_fraction=reset_fraction,
        grad_clip=grad_clip,
        energy_weight=energy_weight,
        force_weight=force_weight,
        seed=seed,
        **arm.arm_options(
            chain_source,
            positives,
            optimizer_init,
            ema_decay,
            lambda_decay_after,
            lambda_decay_threshold,
            lambda_decay_updates,
            lambda_control,
            lambda_control_up,
            lambda_control_down,
            lambda_control_range,
        ),
    )
    # Defaults live in ContrastiveConfig alone: the file sets what it names, options override it.
    contrastive = load_config(
        ContrastiveConfig,
        config,
        section="contrastive",
        siblings=("budget",),  # read by load_budget
        aliases={"lambda": "lambda_"},
        flags={"n_chains": "--chains", "n_updates": "--updates", "warmup_updates": "--warmup"},
        **options,
    )
    budget = budget_options(force_budget, budget_every, screen_replicas, screen_steps, screen_temperature_K)
    cfg = RegularizeConfig(contrastive=contrastive, budget=load_budget(config, budget), device=device)
    given = {k: v for k, v in {**options, **budget}.items() if v is not None}
    if resume is not None and config is not None:
        from crmse_cli.errors import UsageError

        raise UsageError("--resume continues the run with its own settings; drop --config")
    if from_model is not None:  # bring your own MACE model: resolves to an imported model run
        from crmse_cli.stages.mace import import_from_options

        source = import_from_options(ws, from_model, data_file, source, energy_key, forces_key)
    res = regularize(ws, source, cfg, name=name, resume=resume, settings=given)
    emit_result(
        st,
        f"regularize run {res.run_id}",
        res.metrics,
        run_id=res.run_id,
        checkpoint=str(res.checkpoint),
        wall_s=round(res.wall_s, 1),
    )


def register(app: typer.Typer) -> None:
    """Add ``crmse regularize`` to ``app``."""
    app.command("regularize")(regularize_command)
