"""How a GFN-xTB reference ensemble is sampled and labelled: the settings of `crmse fetch xtb`.

Torch- and numpy-free, so the CLI reads its defaults for ``--help`` without importing either.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from crmse_cli.defaults import FRICTION_PER_FS, TEMPERATURE_K, TIMESTEP_FS
from crmse_cli.errors import CrmseError
from crmse_cli.settings import setting
from crmse_cli.validate import (
    MAX_XTB_FRAMES,
    SEED_RANGE,
    TEMPERATURE_RANGE,
    ConfigError,
    check_config,
)

METHODS: dict[str, str] = {"gfn2": "GFN2-xTB", "gfn1": "GFN1-xTB"}
"""Short method names (CLI, registry meta) -> tblite's names."""


def check_method(method: str) -> str:
    """Tblite's name of a short method name (``gfn2``, ``gfn1``); CrmseError otherwise."""
    key = method.lower().replace("-xtb", "")
    if key not in METHODS:
        raise CrmseError(f"unknown xTB method {method!r}; choose one of {', '.join(METHODS)}")
    return METHODS[key]


@dataclass(frozen=True)
class XtbMDConfig:
    """How a reference ensemble is sampled and labelled.

    Attributes:
        temperature_K: thermostat temperature, K (default 500, rMD17's nominal one).
        frames: frames kept over all replicas (3 to 10**6, ``validate.MAX_XTB_FRAMES``).
        method: xTB method of the dynamics, ``gfn2`` or ``gfn1``.
        label_method: xTB method of the labels (None: ``method``; ``gfn1`` with ``gfn2``
            sampling is the "sampled on one surface, labelled on another" control).
        timestep_fs: BAOAB step, fs (0.5: C-H and O-H stretches take ~10 fs).
        friction_per_fs: Langevin friction gamma, 1/fs.
        equilibration_ps: discarded time at the start of each replica, ps.
        stride: steps between kept frames (decorrelation).
        replicas: independent trajectories, each seeded from (seed, replica index).
        seed: seed of the initial velocities and the noise.
        checkpoint_every_s: wall seconds between checkpoints (does not change the frames).
    """

    temperature_K: float = setting(TEMPERATURE_K, range=TEMPERATURE_RANGE, help="Thermostat temperature, K.")
    frames: int = setting(
        1000, range=f"[3, {MAX_XTB_FRAMES}]", help="Frames kept over all replicas (3 to 1000000)."
    )
    method: str = setting("gfn2", help="xTB method of the dynamics: gfn2 or gfn1.")
    label_method: str | None = setting(
        None, help="xTB method of the labels (gfn1: relabelled control).", unset="--method"
    )
    timestep_fs: float = setting(TIMESTEP_FS, range="(0, 100]", help="BAOAB time step, fs.")
    friction_per_fs: float = setting(FRICTION_PER_FS, range="[0, 1e6]", help="Langevin friction, 1/fs.")
    equilibration_ps: float = setting(1.0, range="[0, 1e5]", help="Discarded start, ps.")
    stride: int = setting(20, range="[1, 1e6]", help="Steps between kept frames.")
    replicas: int = setting(1, range=f"[1, {MAX_XTB_FRAMES}]", help="Independent trajectories.")
    seed: int = setting(0, range=SEED_RANGE, help="Seed of the velocities, the noise and the splits.")
    checkpoint_every_s: float = setting(
        5.0, range="[0, 1e9]", help="Wall seconds between checkpoints (the frames do not change)."
    )

    def __post_init__(self) -> None:
        check_config(self)  # types, finiteness and ranges declared on the fields (frames <= 10**6)
        check_method(self.method)
        check_method(self.label)
        if self.frames < max(3, self.replicas):
            raise ConfigError(f"--frames must be >= 3 and >= --replicas, got {self.frames}")

    @property
    def label(self) -> str:
        """The method that labels the frames (the sampling method unless set)."""
        return self.label_method or self.method

    @property
    def equilibration_steps(self) -> int:
        """Discarded steps, rounded up to a whole number of strides."""
        steps = math.ceil(self.equilibration_ps * 1000.0 / self.timestep_fs)
        return math.ceil(steps / self.stride) * self.stride

    def frames_of(self, replica: int) -> int:
        """Frames replica ``replica`` keeps (the total split as evenly as possible)."""
        base, extra = divmod(self.frames, self.replicas)
        return base + (1 if replica < extra else 0)

    def steps_of(self, replica: int) -> int:
        """MD steps of replica ``replica``: equilibration plus its frames times the stride."""
        return self.equilibration_steps + self.frames_of(replica) * self.stride

    def identity(self) -> dict[str, Any]:
        """Every field that changes the frames (not the checkpoint interval)."""
        d = asdict(self)
        d.pop("checkpoint_every_s")
        d["label_method"] = self.label
        return d
