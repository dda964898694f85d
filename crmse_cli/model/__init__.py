"""GNN potentials (PaiNN, SchNet), their graphs, forces, checkpoints and the ASE adapter.

Importing this package imports no torch: the names below load their module when first used, so
the torch-free :mod:`crmse_cli.model.config` (read by the CLI's ``--help``) stays light. The ASE
calculator lives in ``crmse_cli.model.ase_calculator`` and is not listed here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmse_cli.lazy import lazy_getattr

if TYPE_CHECKING:
    from crmse_cli.model.build import build_potential
    from crmse_cli.model.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
    from crmse_cli.model.config import ModelConfig
    from crmse_cli.model.forces import energy_and_forces, force_field, forces_from_energy, laplacian
    from crmse_cli.model.graph import collate, make_graph
    from crmse_cli.model.potential import Potential

_HOMES = {
    "build": ("build_potential",),
    "checkpoint": ("FORMAT_VERSION", "load_checkpoint", "save_checkpoint"),
    "config": ("ModelConfig",),
    "forces": ("energy_and_forces", "force_field", "forces_from_energy", "laplacian"),
    "graph": ("collate", "make_graph"),
    "potential": ("Potential",),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "FORMAT_VERSION",
    "ModelConfig",
    "Potential",
    "build_potential",
    "collate",
    "energy_and_forces",
    "force_field",
    "forces_from_energy",
    "laplacian",
    "load_checkpoint",
    "make_graph",
    "save_checkpoint",
]


__getattr__ = lazy_getattr(__name__, _HOME)
