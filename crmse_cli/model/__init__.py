"""GNN potentials (PaiNN, SchNet), their graphs, forces, checkpoints and the ASE adapter.

The ASE calculator lives in ``crmse_cli.model.ase_calculator`` and is not imported here, so
importing the model does not import ASE.
"""

from crmse_cli.model.build import build_potential
from crmse_cli.model.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from crmse_cli.model.config import ModelConfig
from crmse_cli.model.forces import energy_and_forces, force_field, forces_from_energy, laplacian
from crmse_cli.model.graph import collate, make_graph
from crmse_cli.model.potential import Potential

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
