"""The settings of `crmse sample`: one frozen dataclass, torch-free so the CLI's help reads it."""

from __future__ import annotations

from dataclasses import dataclass

from crmse_cli.defaults import ETA_A2, FRICTION_PER_FS, TEMPERATURE_K, TIMESTEP_FS
from crmse_cli.errors import CrmseError
from crmse_cli.validate import check_config

INTEGRATORS = ("langevin", "ula", "mala")
STARTS = ("test", "reference", "train")


@dataclass(frozen=True)
class SampleConfig:
    """Sampling settings (units in the names).

    Attributes:
        integrator: "langevin" (BAOAB MD), "ula" (overdamped, biased at O(eta) on stiff modes) or
            "mala" (overdamped with a Metropolis test: exact at any eta).
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

    integrator: str = "langevin"
    temperature_K: float = TEMPERATURE_K
    timestep_fs: float = TIMESTEP_FS
    friction_per_fs: float = FRICTION_PER_FS
    eta_A2: float = ETA_A2
    replicas: int = 64
    steps: int = 20000
    record_every: int = 20
    check_every: int = 10
    start: str = "test"
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    processes: int = 1

    def __post_init__(self) -> None:
        check_config(self)
        if self.integrator not in INTEGRATORS:
            raise CrmseError(f"integrator must be one of {', '.join(INTEGRATORS)}, got {self.integrator!r}")
        if self.start not in STARTS:
            raise CrmseError(f"start must be one of {', '.join(STARTS)}, got {self.start!r}")
        for name in ("replicas", "steps", "record_every", "check_every"):
            if int(getattr(self, name)) < 1:
                raise CrmseError(f"{name} must be a positive integer")
        for name in ("temperature_K", "timestep_fs", "eta_A2"):
            if not float(getattr(self, name)) > 0:
                raise CrmseError(f"{name} must be positive")
        if self.friction_per_fs < 0:
            raise CrmseError("friction_per_fs must be >= 0")
        if self.processes > 1 and self.device != "cpu":
            raise CrmseError(
                f"--processes {self.processes} shards replicas over CPU processes; with --device "
                f"{self.device} use --processes 1 (the GPU takes the whole batch)"
            )
        if self.processes > self.replicas:
            raise CrmseError(f"--processes {self.processes} is more than --replicas {self.replicas}")
