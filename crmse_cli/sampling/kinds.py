"""The samplers crmse knows, by name: the one place a sampler's name is read.

Each sampler is a :class:`crmse_cli.sampling.observers.Sampler` subclass (one class per algorithm,
as ASE has one ``MolecularDynamics`` subclass per integrator) and one :class:`SamplerKind` row in
:data:`REGISTRY` (a name to what it builds, as torch-sim's ``INTEGRATOR_REGISTRY``). Stages, the
CLI and the report read a sampler's capabilities from its kind and never compare names:

    has_time    it has physical time (fs): ps axes and leave times, a timestep, kinetic temperature
    chains      it moves positions only, by a step eta: usable as CRMSE's persistent chains
    metropolis  a Metropolis test makes exp(-beta U) exactly stationary at any step; without one
                the chain is biased at O(eta) on stiff modes (the trainer warns)

``crmse sample --integrator NAME`` and the CRMSE chains (``--chain-sampler NAME``) build the same
objects through :func:`build_sampler`. A new sampler is a subclass with a ``from_settings``
classmethod and one line: ``register(SamplerKind("name", "package.module:Class", ...))``.

This module imports no torch (the CLI reads the names for its choices): a kind names its class as
``"module:attribute"``, imported when a sampler is built.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crmse_cli.defaults import ETA_A2, FRICTION_PER_FS, TEMPERATURE_K, TIMESTEP_FS
from crmse_cli.errors import CrmseError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np
    import torch

    from crmse_cli.sampling.observers import ForceFn, Sampler
    from crmse_cli.sampling.shard import ReplicaRows


@dataclass(frozen=True)
class SamplerSettings:
    """The physical settings a sampler is built from (each reads the ones it needs).

    Attributes:
        temperature_K: T of the target exp(-U/kT) (the thermostat's bath for MD).
        timestep_fs: MD time step (samplers with physical time).
        friction_per_fs: Langevin friction gamma, 1/fs.
        eta_A2: step size of the overdamped samplers, Å^2 (beta-scaled: x + eta beta F + ...).
    """

    temperature_K: float = TEMPERATURE_K
    timestep_fs: float = TIMESTEP_FS
    friction_per_fs: float = FRICTION_PER_FS
    eta_A2: float = ETA_A2


@dataclass(frozen=True)
class SamplerKind:
    """One registered sampler: its name, capabilities and the class it builds.

    Attributes:
        name: what ``--integrator`` / ``--chain-sampler`` and the run's config call it.
        target: ``"module:attribute"`` of its :class:`~crmse_cli.sampling.observers.Sampler`
            subclass (imported by :meth:`sampler_class`).
        has_time: its states carry physical time in fs (else ``time_fs`` is NaN: steps count).
        chains: usable as CRMSE persistent chains (positions-only state, step ``eta_A2``).
        metropolis: exact at any step (a Metropolis test); False: biased at O(step).
        help: one line for ``--help`` and the docs.
    """

    name: str
    target: str
    has_time: bool
    chains: bool
    metropolis: bool = False
    help: str = ""

    def sampler_class(self) -> type[Sampler[Any]]:
        """The Sampler subclass :attr:`target` names (importing its module, hence torch)."""
        module, _, attribute = self.target.partition(":")
        cls: type[Sampler[Any]] = getattr(importlib.import_module(module), attribute)
        return cls


REGISTRY: dict[str, SamplerKind] = {}
"""name -> kind, in registration order (the order ``--help`` lists them)."""
DEFAULT_SAMPLER = "langevin"
"""``crmse sample``'s sampler (and that of a sample run whose config names none)."""
DEFAULT_CHAIN_SAMPLER = "ula"
"""The CRMSE chains' sampler: the paper's."""


def register(kind: SamplerKind) -> SamplerKind:
    """Add ``kind`` to :data:`REGISTRY` (a name is registered once); returns it."""
    if kind.name in REGISTRY:
        raise CrmseError(f"a sampler named {kind.name!r} is registered already")
    if ":" not in kind.target:
        raise CrmseError(f"sampler {kind.name!r}: target must be 'module:Class', got {kind.target!r}")
    REGISTRY[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove the sampler ``name`` (tests that register a toy one)."""
    REGISTRY.pop(name, None)


def sampler_names() -> tuple[str, ...]:
    """Every registered sampler's name: the choices of ``crmse sample --integrator``."""
    return tuple(REGISTRY)


def chain_sampler_names() -> tuple[str, ...]:
    """The samplers usable as CRMSE chains: the choices of ``--chain-sampler``."""
    return tuple(name for name, kind in REGISTRY.items() if kind.chains)


def described(names: Callable[[], Sequence[str]]) -> str:
    """``--help`` of an option taking ``names()``: each registered sampler's name and help line."""
    return "; ".join(f"{name}: {REGISTRY[name].help}" for name in names()) + "."


def sampler_kind(name: str) -> SamplerKind:
    """The kind registered as ``name``; an unknown name is refused naming the known ones."""
    kind = REGISTRY.get(name)
    if kind is None:
        raise CrmseError(f"unknown sampler {name!r}; registered: {', '.join(REGISTRY)}")
    return kind


def build_sampler(
    sampler: str | SamplerKind,
    force_fn: ForceFn,
    settings: SamplerSettings,
    *,
    generator: torch.Generator,
    species: Sequence[int] | np.ndarray | None = None,
    dtype: torch.dtype | None = None,
    rows: ReplicaRows | None = None,
) -> Sampler[Any]:
    """The sampler ``sampler`` names (or is), built from ``settings``: the only dispatch on a name.

    Args:
        sampler: a registered name or a kind.
        force_fn: positions (B, N, 3) Å -> (energy (B,) kcal/mol, forces (B, N, 3) kcal/mol/Å).
        settings: temperature, timestep, friction, eta (each sampler reads its own).
        generator: torch generator of its noise, on the positions' device.
        species: (N,) atomic numbers (samplers with masses need them).
        dtype: the positions' dtype (masses are rounded to it).
        rows: it runs these rows of a larger batch (:mod:`crmse_cli.sampling.shard`).
    """
    kind = sampler if isinstance(sampler, SamplerKind) else sampler_kind(sampler)
    return kind.sampler_class().from_settings(
        force_fn, settings, generator=generator, species=species, dtype=dtype, rows=rows
    )


register(
    SamplerKind(
        "langevin",
        "crmse_cli.sampling.langevin:LangevinBAOAB",
        has_time=True,
        chains=False,
        help="BAOAB molecular dynamics",
    )
)
register(
    SamplerKind(
        "ula",
        "crmse_cli.sampling.ula:ULA",
        has_time=False,
        chains=True,
        help="overdamped, biased at O(eta) on stiff modes",
    )
)
register(
    SamplerKind(
        "mala",
        "crmse_cli.sampling.mala:MALA",
        has_time=False,
        chains=True,
        metropolis=True,
        help="Metropolis-adjusted ULA, exact at any eta",
    )
)
