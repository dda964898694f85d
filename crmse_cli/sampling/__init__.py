"""Batched, model-agnostic samplers: Langevin BAOAB, ULA, MALA, and their observers.

A force field is any callable ``force_fn(positions (B, N, 3) Å) -> (energy (B,) kcal/mol,
forces (B, N, 3) kcal/mol/Å)`` returning detached tensors. The samplers are registered by name in
:mod:`crmse_cli.sampling.kinds` (torch-free, read by the CLI and the report); importing this
package imports no torch: the names below load their module when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmse_cli.lazy import lazy_getattr

if TYPE_CHECKING:
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

_HOMES = {
    "langevin": (
        "DEFAULT_FRICTION_PER_FS",
        "LangevinBAOAB",
        "LangevinState",
        "init_velocities",
        "kinetic_energy",
        "kinetic_temperature",
        "masses_from_species",
    ),
    "monitor": ("StabilityMonitor", "StabilitySummary"),
    "observers": ("ForceFn", "Sampler", "SamplerState"),
    "trajectory": ("Trajectory", "TrajectoryRecorder", "export_extxyz", "load_trajectory"),
    "ula": ("ULA", "ULAState", "ula_steps"),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}

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


__getattr__ = lazy_getattr(__name__, _HOME)
