"""Batched, model-agnostic samplers: Langevin BAOAB, ULA, and their observers.

A force field is any callable ``force_fn(positions (B, N, 3) Å) -> (energy (B,) kcal/mol,
forces (B, N, 3) kcal/mol/Å)`` returning detached tensors.
"""

from crmse_cli.sampling.langevin import (
    DEFAULT_FRICTION_PER_FS,
    LangevinBAOAB,
    LangevinState,
    init_velocities,
    kinetic_energy,
    kinetic_temperature,
    masses_from_species,
)
from crmse_cli.sampling.monitor import StabilityMonitor, StabilitySummary
from crmse_cli.sampling.observers import ForceFn, Sampler, SamplerState
from crmse_cli.sampling.trajectory import Trajectory, TrajectoryRecorder, export_extxyz, load_trajectory
from crmse_cli.sampling.ula import ULA, ULAState, ula_steps

__all__ = [
    "DEFAULT_FRICTION_PER_FS",
    "ForceFn",
    "LangevinBAOAB",
    "LangevinState",
    "Sampler",
    "SamplerState",
    "StabilityMonitor",
    "StabilitySummary",
    "Trajectory",
    "TrajectoryRecorder",
    "ULA",
    "ULAState",
    "export_extxyz",
    "init_velocities",
    "kinetic_energy",
    "kinetic_temperature",
    "load_trajectory",
    "masses_from_species",
    "ula_steps",
]
