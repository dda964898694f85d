"""Any torch energy model as a crmse potential: the adapter the trainers, samplers and checkpoints take.

Wrap a module that maps a batch of replicas of one molecule to energies,

    module(positions (B, N, 3) Å, species (N,) atomic numbers) -> energies (B,) kcal/mol,

in :class:`ModulePotential` and every part of crmse runs on it: pretraining, CRMSE, sampling,
evaluation, checkpoints. What the module must provide (docs/models.md has the full list):

- ``forward(positions, species)`` differentiable in ``positions`` and in its parameters (forces
  are taken here, by :mod:`crmse_cli.model.forces`, never by the module), twice differentiable
  for force training, batched over B without mixing replicas, in its parameters' dtype;
- ``parameters()`` (what the optimizers train) and ``state_dict()`` / ``load_state_dict()``;
- optional: ``fit_reference(species, energies_kcal_mol, forces_kcal_mol_A)`` and
  ``add_reference_energies(delta)`` for pretraining from scratch, ``to_bytes()`` /
  ``from_bytes()`` (classmethod) for how a checkpoint stores its construction (default: the
  module pickled with ``torch.save``, so its class must be importable where it is loaded).

The wrapper applies no per-element shift or scale of its own: a module owns its reference
energies (MACE's E0s), so they are never counted twice.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from crmse_cli import keys
from crmse_cli.errors import CrmseError
from crmse_cli.model.config import ModelConfig
from crmse_cli.model.graph import DENSE_N_ATOMS, Graph
from crmse_cli.model.layers import check_species
from crmse_cli.model.potential import Potential


class ModulePotential(Potential):
    """A :class:`Potential` whose energies come from a wrapped torch module.

    Args:
        module: ``module(positions (B,N,3) Å, species (N,)) -> (B,) kcal/mol``.
        config: the model's hyper-parameters as recorded in runs and checkpoints (``architecture``
            names the adapter: "mace" or "module"; ``cutoff_A`` and ``dtype`` describe the module).
        species: the atomic numbers the module supports.

    The ``shift`` (zeros) and ``scale`` (one) buffers of :class:`Potential` exist so checkpoints
    keep their fields, but they are not applied.
    """

    def __init__(self, module: nn.Module, config: ModelConfig, species: Sequence[int]) -> None:
        nn.Module.__init__(self)  # not Potential.__init__: there is no built-in network to build
        self.config = config
        self.module = module
        self._species = check_species(species)
        dtype = _module_dtype(module)
        self.register_buffer("shift", torch.zeros(len(self._species), dtype=dtype))  # unused, kept at 0
        self.register_buffer("scale", torch.ones((), dtype=dtype))  # unused, kept at 1

    @property
    def species(self) -> list[int]:
        """The supported atomic numbers, sorted."""
        return list(self._species)

    def forward(self, graph: Graph) -> Tensor:
        """(B,) energies in kcal/mol of the structures of ``graph``.

        A ``make_graph`` batch (B replicas of one molecule, the hot path) is one module call; a
        ``collate`` batch of different molecules is called structure by structure.
        """
        positions = graph[keys.POSITIONS]
        if positions.dtype != self.shift.dtype:
            raise CrmseError(
                f"positions are {positions.dtype} but the potential is {self.shift.dtype}; "
                "convert one of them (e.g. positions.to(potential.dtype))"
            )
        n_atoms = graph.get(DENSE_N_ATOMS)
        if n_atoms is not None:
            n_structures = int(graph[keys.N_STRUCTURES])
            return self._call(positions.view(n_structures, int(n_atoms), 3), graph[keys.SPECIES][:n_atoms])
        batch, species = graph[keys.BATCH], graph[keys.SPECIES]
        out = [
            self._call(positions[batch == b].unsqueeze(0), species[batch == b])
            for b in range(int(graph[keys.N_STRUCTURES]))
        ]
        return torch.cat(out)

    def _call(self, positions: Tensor, species: Tensor) -> Tensor:
        energy: Tensor = self.module(positions, species)
        if energy.shape != positions.shape[:1]:
            raise CrmseError(
                f"the wrapped {type(self.module).__name__} returned energies of shape "
                f"{tuple(energy.shape)} for {positions.shape[0]} structures; it must return (B,)"
            )
        return energy

    def fit_shift_scale(
        self, species: Any, energies: Any, forces: Any | None = None
    ) -> tuple[list[float], float]:
        """Let the module fit its own reference energies (``module.fit_reference``).

        Returns:
            (this wrapper's shift, all zero, and scale, 1): nothing is applied on top.
        """
        fit = getattr(self.module, "fit_reference", None)
        if fit is None:
            raise CrmseError(
                f"{type(self.module).__name__} has no fit_reference(species, energies, forces); "
                "train it from scratch outside crmse or add that method"
            )
        fit(species, energies, forces)
        return [0.0] * len(self._species), 1.0

    def add_reference_energies(self, delta: Tensor) -> None:
        """Add ``delta`` (S,) kcal/mol per atom of each species to the module's reference energies."""
        add = getattr(self.module, "add_reference_energies", None)
        if add is None:
            raise CrmseError(f"{type(self.module).__name__} has no add_reference_energies(delta)")
        add(delta)

    def module_bytes(self) -> bytes:
        """How a checkpoint stores the module's construction: ``module.to_bytes()`` or its pickle."""
        to_bytes = getattr(self.module, "to_bytes", None)
        if to_bytes is not None:
            data: bytes = to_bytes()
            return data
        buffer = io.BytesIO()
        torch.save(self.module, buffer)
        return buffer.getvalue()


    def module_spec(self) -> dict[str, Any] | None:
        """The module's architecture as plain values (``module.spec()``, MACE's), if it has one.

        A checkpoint rebuilds a module from its spec without unpickling anything, so it loads
        without ``--trust-code`` (see ``model/checkpoint.py``).
        """
        spec = getattr(self.module, "spec", None) if self.config.architecture == "mace" else None
        return spec() if callable(spec) else None


def module_from_bytes(data: bytes, device: str | torch.device = "cpu") -> nn.Module:
    """A module pickled by :meth:`ModulePotential.module_bytes` (unpickling runs the module's code)."""
    module = torch.load(io.BytesIO(data), map_location=device, weights_only=False)
    if not isinstance(module, nn.Module):
        raise CrmseError(f"the checkpoint's module is a {type(module).__name__}, not a torch module")
    return module


def _module_dtype(module: nn.Module) -> torch.dtype:
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


def wrap_module(
    module: nn.Module, species: Sequence[int], *, cutoff_A: float = 5.0, architecture: str = "module"
) -> ModulePotential:
    """Wrap your own energy module (see the module docstring for its contract).

    Args:
        module: ``module(positions (B,N,3) Å, species (N,)) -> (B,) kcal/mol``.
        species: the atomic numbers it supports.
        cutoff_A: its interaction range in Å (recorded only).
        architecture: the adapter name recorded in the config.
    """
    dtype = _module_dtype(module)
    names = {torch.float32: "float32", torch.float64: "float64"}
    if dtype not in names:
        raise CrmseError(f"the module's weights are {dtype}; crmse runs float32 or float64 models")
    config = ModelConfig(architecture=architecture, cutoff_A=float(cutoff_A), dtype=names[dtype])
    return ModulePotential(module, config, species)
