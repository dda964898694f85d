"""The settings of `crmse sample`: one frozen dataclass, torch-free so the CLI's help reads it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from crmse_cli.defaults import ETA_A2, FRICTION_PER_FS, TEMPERATURE_K, TIMESTEP_FS
from crmse_cli.sampling.kinds import DEFAULT_SAMPLER, SamplerSettings, described, sampler_names
from crmse_cli.settings import setting
from crmse_cli.validate import (
    COUNT_RANGE,
    PROCESSES_RANGE,
    SEED_RANGE,
    TEMPERATURE_RANGE,
    ConfigError,
    check_config,
)

STARTS = ("test", "reference", "train")
Report = Callable[[int, float, int, float], None]
"""report(step, time_fs, replicas that left, mean kinetic temperature K or NaN): one progress row
(``crmse sample`` in one process, or the shards' parent; :mod:`crmse_cli.stages.sample_shards`)."""


@dataclass(frozen=True)
class SampleConfig:
    """Sampling settings (units in the names).

    Attributes:
        integrator: a registered sampler (:func:`crmse_cli.sampling.kinds.sampler_names`):
            "langevin" (BAOAB MD), "ula" (overdamped, biased at O(eta) on stiff modes) or "mala"
            (overdamped with a Metropolis test: exact at any eta).
        temperature_K: thermostat / Boltzmann temperature.
        timestep_fs: MD time step (langevin).
        friction_per_fs: Langevin friction gamma (0.01/fs, as ASE's documentation suggests).
        eta_A2: step size of the overdamped samplers (ula, mala), Å^2.
        replicas: number of replicas run as one batch.
        steps: number of integrator steps.
        record_every: keep a frame of every replica every this many steps.
        check_every: run the stability monitor every this many steps.
        start: frames the replicas start from: "test" (held-out test frames), "reference" (DFT
            reference frames) or "train".
        seed: seed of the starting frames, velocities and noise.
        device: "cpu" or "cuda".
        dtype: "float32" (default) or "float64".
        processes: worker processes on the CPU, one torch thread each, the replicas split into
            contiguous slices (1: sample in this process, with the global ``--threads``). Each
            replica gets the noise it gets in one process; the run keeps no samples when
            interrupted.
    """

    integrator: str = setting(DEFAULT_SAMPLER, choices=sampler_names, help=described(sampler_names))
    temperature_K: float = setting(TEMPERATURE_K, range=TEMPERATURE_RANGE, help="Temperature in K.")
    timestep_fs: float = setting(TIMESTEP_FS, range="(0, 100]", help="MD time step in fs (langevin).")
    friction_per_fs: float = setting(FRICTION_PER_FS, range="[0, 1e6]", help="Langevin friction in 1/fs.")
    eta_A2: float = setting(ETA_A2, range="(0, 100]", help="Step size in Å² (ula, mala).")
    replicas: int = setting(64, range="[1, 1e6]", help="Replicas run as one batch.")
    steps: int = setting(20000, range=COUNT_RANGE, help="Integrator steps (20000 x 0.5 fs = 10 ps).")
    record_every: int = setting(20, range=COUNT_RANGE, help="Record a frame of every replica every N steps.")
    check_every: int = setting(
        10, range=COUNT_RANGE, help="Run the stability monitor every N steps.", cli=False
    )
    start: str = setting(
        "test", choices=STARTS, help="Start frames: test, reference or train frames of the split."
    )
    seed: int = setting(0, range=SEED_RANGE, help="Seed of start frames, velocities and noise.")
    device: str = setting("cpu", help="cpu, cuda (the current GPU) or cuda:N (GPU N).")
    dtype: str = setting("float32", choices=("float32", "float64"), help="The model's dtype.")
    processes: int = setting(
        1,
        range=PROCESSES_RANGE,
        help="Worker processes (CPU only), one torch thread each; the replicas are split between them.",
    )

    def __post_init__(self) -> None:
        check_config(self)  # types, ranges and choices declared on the fields: crmse_cli/validate.py
        if self.processes > 1 and self.device != "cpu":
            raise ConfigError(
                f"--processes {self.processes} shards replicas over CPU processes; with --device "
                f"{self.device} use --processes 1 (the GPU takes the whole batch)"
            )
        if self.processes > self.replicas:
            raise ConfigError(f"--processes {self.processes} is more than --replicas {self.replicas}")

    @property
    def sampler_settings(self) -> SamplerSettings:
        """What the sampler is built from (:func:`crmse_cli.sampling.kinds.build_sampler`)."""
        return SamplerSettings(
            temperature_K=self.temperature_K,
            timestep_fs=self.timestep_fs,
            friction_per_fs=self.friction_per_fs,
            eta_A2=self.eta_A2,
        )


def report_interval(cfg: SampleConfig) -> int:
    """Steps between progress rows (``temperature_kinetic``, ``n_broken``) and bar updates."""
    return max(cfg.record_every, 100)
