"""The run loop shared by the samplers, with ASE-style observers (``Dynamics.attach``).

A sampler advances an immutable state one step at a time (:meth:`Sampler.step`); :meth:`Sampler.irun`
yields every new state and :meth:`Sampler.run` drives it to the end. Everything that is not the
update rule itself (logging, trajectory writing, progress bars, stability checks) is an observer:
``sampler.attach(fn, every=n)`` calls ``fn(state)`` on every state whose step counter is a
multiple of ``n``. The initial state is observed only when it is fresh (``state.step == 0``), so a
run continued from an earlier one never shows an observer the same step twice.

Stopping early: an observer (or the consumer of :meth:`Sampler.irun`) calls
:meth:`Sampler.request_stop`; the loop ends before the next step. A ``KeyboardInterrupt`` during
:meth:`Sampler.run` is caught: ``run`` returns the last complete state, sets ``interrupted`` and
the observers keep what they recorded, so the caller can still save a trajectory and mark the
run ``interrupted``.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, Self, TypeVar

import numpy as np
import torch

from crmse_cli.errors import CrmseError

if TYPE_CHECKING:
    from crmse_cli.sampling.kinds import SamplerSettings
    from crmse_cli.sampling.shard import ReplicaRows

logger = logging.getLogger(__name__)

ForceFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""positions (B, N, 3) Å -> (energy (B,) kcal/mol, forces (B, N, 3) kcal/mol/Å), detached."""


class SamplerState(Protocol):
    """What every observer may read from a sampler state."""

    @property
    def positions(self) -> torch.Tensor:
        """(B, N, 3) Å."""

    @property
    def energy(self) -> torch.Tensor:
        """(B,) kcal/mol, the potential energy of ``positions``."""

    @property
    def step(self) -> int:
        """Steps taken since the state was created."""

    @property
    def time_fs(self) -> float:
        """Simulated time in fs; NaN for samplers without physical time."""


S = TypeVar("S", bound=SamplerState)


@dataclass(frozen=True)
class _Hook(Generic[S]):
    fn: Callable[[S], object]
    every: int


class Sampler(ABC, Generic[S]):
    """Base class: observers, the stop flag, and the run loop.

    Subclasses define :meth:`step`, ``init_state(positions)`` and :meth:`from_settings` (how
    :func:`crmse_cli.sampling.kinds.build_sampler` makes one), and override :meth:`acceptance` and
    :meth:`kinetic_temperature` where they have them.
    """

    def __init__(self) -> None:
        self._hooks: list[_Hook[S]] = []
        self._stop = False
        self.interrupted = False
        """True when the last :meth:`run` ended on a KeyboardInterrupt."""
        self.last_state: S | None = None
        """The last complete state seen by :meth:`irun` (valid after an interruption too)."""

    @classmethod
    @abstractmethod
    def from_settings(
        cls,
        force_fn: ForceFn,
        settings: SamplerSettings,
        *,
        generator: torch.Generator,
        species: Sequence[int] | np.ndarray | None = None,
        dtype: torch.dtype | None = None,
        rows: ReplicaRows | None = None,
    ) -> Self:
        """The sampler of ``settings`` (arguments as :func:`crmse_cli.sampling.kinds.build_sampler`)."""

    @abstractmethod
    def init_state(self, positions: torch.Tensor) -> S:
        """The first state at ``positions`` (B, N, 3) Å (energy and forces evaluated)."""

    @abstractmethod
    def step(self, state: S) -> S:
        """One update; returns a new state and leaves ``state`` untouched."""

    def acceptance(self, state: S) -> float:
        """Mean share of accepted proposals since ``state``'s start; NaN without a Metropolis test."""
        return math.nan

    def kinetic_temperature(self, state: S) -> torch.Tensor:
        """(B,) K of the replicas' velocities; NaN for samplers without velocities."""
        return torch.full((state.positions.shape[0],), math.nan, dtype=torch.float64)

    def attach(self, fn: Callable[[S], object], every: int = 1) -> None:
        """Call ``fn(state)`` on every state whose ``step`` is a multiple of ``every``.

        Observers run in the order they were attached; their return value is ignored.
        """
        if int(every) < 1:
            raise CrmseError(f"observer interval must be a positive number of steps, got {every}")
        self._hooks.append(_Hook(fn, int(every)))

    def detach(self, fn: Callable[[S], object]) -> None:
        """Remove every attachment of ``fn``."""
        self._hooks = [h for h in self._hooks if h.fn is not fn]

    def request_stop(self) -> None:
        """Ask the running loop to end before its next step (call from an observer)."""
        self._stop = True

    @property
    def stop_requested(self) -> bool:
        """True once an observer called :meth:`request_stop`."""
        return self._stop

    def call_observers(self, state: S) -> None:
        """Run the observers due at ``state.step``."""
        for hook in self._hooks:
            if state.step % hook.every == 0:
                hook.fn(state)

    def irun(self, state: S, n_steps: int) -> Iterator[S]:
        """Take up to ``n_steps`` steps, yielding each new state after its observers ran."""
        if int(n_steps) < 0:
            raise CrmseError(f"number of steps must be >= 0, got {n_steps}")
        self._stop = False
        self.last_state = state
        if state.step == 0:
            self.call_observers(state)
        for _ in range(int(n_steps)):
            if self._stop:
                logger.info("sampler stopped on request at step %d", state.step)
                break
            state = self.step(state)
            self.last_state = state
            self.call_observers(state)
            yield state

    def advance(self, state: S, n_steps: int) -> S:
        """Take ``n_steps`` steps (fewer if stopped) and return the last state.

        Unlike :meth:`run`, a KeyboardInterrupt propagates: the CRMSE chains move this way, inside
        a run whose own handler marks it interrupted.
        """
        last = state
        for last in self.irun(state, n_steps):  # noqa: B007 - the loop runs the steps
            pass
        return last

    def run(self, state: S, n_steps: int) -> S:
        """Take ``n_steps`` steps (fewer if stopped or interrupted); return the last complete state."""
        self.interrupted = False
        try:
            for _ in self.irun(state, n_steps):
                pass
        except KeyboardInterrupt:
            self.interrupted = True
            done = self.last_state.step if self.last_state is not None else state.step
            logger.warning("sampling interrupted at step %d; keeping the states sampled so far", done)
        return self.last_state if self.last_state is not None else state
