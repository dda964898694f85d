"""Trajectory recording (an observer), the compact npz artifact, and extended-XYZ export.

Artifact format (uncompressed ``.npz``, version 1), internal units:

- ``positions`` (T, B, N, 3) float32, Å: T recorded frames of B replicas.
- ``energies`` (T, B) float64, kcal/mol: potential energy of each frame.
- ``time_fs`` (T,) float64, fs (NaN for ULA); ``steps`` (T,) int64.
- ``species`` (N,) int64, atomic numbers.
- ``stability_*``: the :class:`~crmse_cli.sampling.monitor.StabilityMonitor` records when a
  monitor was given (see ``StabilityMonitor.results``).
- ``meta``: 0-d unicode array holding JSON (format version, units, and the caller's fields).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write as ase_write

from crmse_cli.errors import CrmseError, DataError
from crmse_cli.fileio import NPZ_READ_ERRORS, atomic_path
from crmse_cli.sampling.monitor import StabilityMonitor
from crmse_cli.sampling.observers import SamplerState
from crmse_cli.units import EV_PER_KCAL_PER_MOL

FORMAT_VERSION = 1
UNITS = {"length": "A", "energy": "kcal/mol", "time": "fs"}


class TrajectoryRecorder:
    """Observer that keeps every state it is shown: ``sampler.attach(recorder, every=n)``.

    Frames are copied to the CPU at once (positions as float32), so the sampler's tensors can
    live on a GPU and be overwritten.

    Args:
        species: (N,) atomic numbers of the molecule.
        monitor: a stability monitor whose records go into the artifact.
    """

    def __init__(self, species: np.ndarray | list[int], *, monitor: StabilityMonitor | None = None) -> None:
        self.species = np.asarray(species, dtype=np.int64).reshape(-1)
        self.monitor = monitor
        self._positions: list[torch.Tensor] = []
        self._energies: list[torch.Tensor] = []
        self._time_fs: list[float] = []
        self._steps: list[int] = []

    def __call__(self, state: SamplerState) -> None:
        """Record ``state`` (the observer entry point)."""
        x = state.positions.detach()
        if x.ndim != 3 or x.shape[1:] != (self.species.shape[0], 3):
            raise CrmseError(f"trajectory of {self.species.shape[0]} atoms got positions {tuple(x.shape)}")
        self._positions.append(x.to("cpu", torch.float32, copy=True))
        self._energies.append(state.energy.detach().to("cpu", torch.float64, copy=True))
        self._time_fs.append(float(state.time_fs))
        self._steps.append(int(state.step))

    @property
    def n_frames(self) -> int:
        """T, the number of recorded states."""
        return len(self._steps)

    def positions(self) -> np.ndarray:
        """(T, B, N, 3) float32 Å."""
        return (
            torch.stack(self._positions).numpy()
            if self._positions
            else np.zeros((0, 0, len(self.species), 3))
        )

    def energies(self) -> np.ndarray:
        """(T, B) float64 kcal/mol."""
        return torch.stack(self._energies).numpy() if self._energies else np.zeros((0, 0))

    def save(self, path: Path | str, *, meta: dict[str, Any] | None = None) -> Path:
        """Write the artifact atomically (crmse_cli.fileio.atomic_path); returns ``path``.

        Args:
            path: destination ``.npz``.
            meta: JSON-serialisable fields to record (sampler, temperature_K, checkpoint, ...).
        """
        if not self._steps:
            raise CrmseError("no trajectory frames were recorded; attach the recorder before running")
        arrays: dict[str, np.ndarray] = {
            "positions": self.positions().astype(np.float32),
            "energies": self.energies().astype(np.float64),
            "time_fs": np.asarray(self._time_fs, dtype=np.float64),
            "steps": np.asarray(self._steps, dtype=np.int64),
            "species": self.species,
        }
        return _write(Path(path), arrays, self.monitor, meta)


def _write(
    path: Path, arrays: dict[str, np.ndarray], monitor: StabilityMonitor | None, meta: dict[str, Any] | None
) -> Path:
    """Write the artifact's arrays, the monitor's records and the meta JSON atomically."""
    arrays = dict(arrays)
    if monitor is not None:
        arrays.update(monitor.results())
    info = dict(meta or {}, format_version=FORMAT_VERSION, units=UNITS)
    if monitor is not None:
        info["stability"] = monitor.summary().to_dict()
    arrays["meta"] = np.array(json.dumps(info, sort_keys=True, default=_json_default))
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    return path


def merge_trajectories(
    shards: list[Path], path: Path | str, *, monitor: StabilityMonitor, meta: dict[str, Any] | None = None
) -> Path:
    """Join trajectory artifacts of consecutive replica slices into one artifact, atomically.

    The shards (written by :meth:`TrajectoryRecorder.save` with a monitor, in replica order) must
    have recorded the same steps of the same molecule. Their stability records are joined into
    ``monitor`` (built like the shards' monitors), whose summary then covers every replica.

    Args:
        shards: shard artifacts, first replicas first.
        path: destination ``.npz``.
        monitor: receives the joined stability records.
        meta: JSON-serialisable fields to record, as for :meth:`TrajectoryRecorder.save`.

    Returns:
        ``path``.
    """
    parts = [load_trajectory(p) for p in shards]
    if not parts:
        raise CrmseError("no trajectory shards to merge")
    first = parts[0]
    for p, traj in zip(shards, parts, strict=True):
        same = np.array_equal(traj.steps, first.steps) and np.array_equal(traj.species, first.species)
        if not same or "stability_left" not in traj.stability:
            raise CrmseError(f"trajectory shard {p} does not match the others (steps, atoms or records)")
    records = {
        key: np.concatenate([np.asarray(t.stability[key]).reshape(-1) for t in parts])
        for key in ("stability_left", "stability_first_step", "stability_time_fs", "stability_reason")
    }
    records["stability_observed_steps"] = first.stability["stability_observed_steps"]
    monitor.restore(records, float(first.meta.get("stability", {}).get("observed_time_fs", math.nan)))
    arrays = {
        "positions": np.concatenate([t.positions for t in parts], axis=1),
        "energies": np.concatenate([t.energies for t in parts], axis=1),
        "time_fs": first.time_fs,
        "steps": first.steps,
        "species": first.species,
    }
    return _write(Path(path), arrays, monitor, meta)


def _json_default(obj: object) -> object:
    """JSON for numpy scalars; inf/NaN pass through json's own extension."""
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A loaded trajectory artifact (see the module docstring for shapes and units)."""

    positions: np.ndarray  # (T, B, N, 3) float32 Å
    energies: np.ndarray  # (T, B) float64 kcal/mol
    time_fs: np.ndarray  # (T,) fs
    steps: np.ndarray  # (T,) int64
    species: np.ndarray  # (N,) int64
    stability: dict[str, np.ndarray] = field(default_factory=dict)  # stability_* arrays
    meta: dict[str, Any] = field(default_factory=dict)


def load_trajectory(path: Path | str) -> Trajectory:
    """Read an artifact written by :meth:`TrajectoryRecorder.save`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"trajectory file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            return Trajectory(
                positions=z["positions"],
                energies=z["energies"],
                time_fs=z["time_fs"],
                steps=z["steps"],
                species=z["species"],
                stability={k: z[k] for k in z.files if k.startswith("stability_")},
                meta=json.loads(str(z["meta"])),
            )
    except NPZ_READ_ERRORS as exc:
        raise DataError(f"trajectory file {path} is unreadable ({exc}); sample again") from exc


def export_extxyz(
    npz_path: Path | str, out_path: Path | str, replicas: list[int] | None = None, *, stride: int = 1
) -> int:
    """Write a trajectory artifact as extended XYZ (ase.io.read reads it back).

    Frames are written replica by replica (all frames of the first chosen replica, then the
    next). Positions in Å; each frame carries its energy in eV (``atoms.get_potential_energy()``
    after reading) and ``replica``, ``step``, ``time_fs`` in ``atoms.info``.

    Args:
        npz_path: artifact from :meth:`TrajectoryRecorder.save`.
        out_path: destination ``.xyz`` (written atomically).
        replicas: replica indices to export (default: all).
        stride: keep every ``stride``-th recorded frame.

    Returns:
        The number of frames written.
    """
    traj = load_trajectory(npz_path)
    n_rep = traj.positions.shape[1]
    chosen = list(range(n_rep)) if replicas is None else [int(r) for r in replicas]
    if any(r < 0 or r >= n_rep for r in chosen) or stride < 1:
        raise CrmseError(f"replicas must lie in 0..{n_rep - 1} and stride must be >= 1")
    frames: list[Atoms] = []
    for r in chosen:
        for t in range(0, traj.positions.shape[0], stride):
            atoms = Atoms(numbers=traj.species, positions=traj.positions[t, r].astype(np.float64))
            atoms.info.update(replica=r, step=int(traj.steps[t]), time_fs=float(traj.time_fs[t]))
            atoms.calc = SinglePointCalculator(  # type: ignore[no-untyped-call]
                atoms, energy=float(traj.energies[t, r]) * EV_PER_KCAL_PER_MOL
            )
            frames.append(atoms)
    with atomic_path(out_path) as tmp:
        ase_write(tmp, frames, format="extxyz")
    return len(frames)
