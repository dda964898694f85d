"""The potential: a network plus a per-element energy shift and a global scale, in kcal/mol.

    U(x) = scale * sum_i out_i(x) + sum_i shift[Z_i]  (+ a fixed ZBL pair repulsion, if configured)

``shift`` (kcal/mol per atom of each element) is the least-squares fit of the training energies
on the composition, so the network only learns what the composition does not explain, and
``scale`` (kcal/mol per network unit) is the RMS of the training forces, so an initialised
network already predicts forces of the right size. Both are buffers: they travel with
``state_dict`` (checkpoints) and ``.to(dtype)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from crmse_cli import keys
from crmse_cli.errors import CrmseError, DataError
from crmse_cli.model.config import ModelConfig
from crmse_cli.model.graph import Graph, Layout, layout_of, make_graph
from crmse_cli.model.layers import AtomisticNetwork
from crmse_cli.model.painn import PaiNN
from crmse_cli.model.schnet import SchNet
from crmse_cli.model.zbl import ZBLRepulsion

# Relative singular-value cut-off of the composition least squares: with one molecule all rows
# of the composition matrix are equal (rank 1) and lstsq returns the minimum-norm shift, whose
# sum over a molecule's atoms is the mean training energy.
_LSTSQ_RCOND = 1e-10

# A scale below this (kcal/mol) only measures round-off (e.g. energies exactly linear in the
# composition and no forces); 1 is used instead.
_MIN_SCALE = 1e-6

NETWORKS: dict[str, type[AtomisticNetwork]] = {"painn": PaiNN, "schnet": SchNet}


class Potential(nn.Module):
    """Energies in kcal/mol of batched structures (positions in Å).

    Args:
        config: the model's hyper-parameters.
        species: atomic numbers the potential supports.
    """

    shift: Tensor
    scale: Tensor

    def __init__(self, config: ModelConfig, species: Sequence[int]) -> None:
        super().__init__()
        self.config = config
        self.network = NETWORKS[config.architecture](config, species)
        n_species = len(self.network.species)
        self.register_buffer("shift", torch.zeros(n_species))  # kcal/mol per atom, per species
        self.register_buffer("scale", torch.ones(()))  # kcal/mol per network output unit
        self.repulsion = ZBLRepulsion(self.network.species) if config.pair_repulsion == "zbl" else None

    @property
    def species(self) -> list[int]:
        """The supported atomic numbers, sorted (the order of ``shift``)."""
        return self.network.species

    @property
    def dtype(self) -> torch.dtype:
        """Floating-point type of the weights."""
        return self.shift.dtype

    def forward(self, graph: Graph) -> Tensor:
        """(B,) energies in kcal/mol of the structures of ``graph`` (see ``model.graph``)."""
        positions = graph[keys.POSITIONS]
        if positions.dtype != self.shift.dtype:
            raise CrmseError(
                f"positions are {positions.dtype} but the potential is {self.shift.dtype}; "
                "convert one of them (e.g. positions.to(potential.dtype))"
            )
        layout = layout_of(graph, self.config.cutoff_A)
        return self.layout_energies(layout, self.network.species_index(layout.species))

    def layout_energies(self, layout: Layout, index: Tensor) -> Tensor:
        """(B,) energies in kcal/mol of a layout whose species rows ``index`` are already checked.

        The compiled force path (``model/compiled.py``) checks the species once, outside the
        compiled region (the check reads a tensor into Python, which would break the graph),
        and calls this with the same ``index`` at every step.
        """
        out = self.network.atomic_outputs(layout, index)
        shift = self.shift
        # Summed apart and added last: total energies are ~1e5 kcal/mol, so adding the large
        # per-atom shifts to each small atomic output first would round every term in float32.
        energy = layout.sum_atoms(self.scale * out) + layout.sum_atoms(shift[index].expand_as(out))
        if self.repulsion is not None:
            energy = energy + self.repulsion(layout, index)
        return energy

    def energies(self, positions: Tensor, species: Tensor) -> Tensor:
        """(B,) energies in kcal/mol of B replicas of one molecule (differentiable).

        Args:
            positions: (B, N, 3) Å in the potential's dtype.
            species: (N,) atomic numbers.

        This is the ``energy_fn(positions) -> (B,)`` closure the contrastive trainer takes:
        ``functools.partial(potential.energies, species=species)``.
        """
        energy: Tensor = self(make_graph(positions, species))
        return energy

    def fit_shift_scale(
        self,
        species: Any,
        energies: Any,
        forces: Any | None = None,
    ) -> tuple[list[float], float]:
        """Fit the per-element shift and the global scale to training data; set the buffers.

        Args:
            species: atomic numbers, (N,) for one molecule, (F, N), or a sequence of F arrays.
            energies: (F,) total energies, kcal/mol.
            forces: (F, N, 3) forces in kcal/mol/Å (or a sequence of (N_f, 3) arrays). The scale
                is their RMS; without forces it is the standard deviation of the per-atom
                energy residual after the shift.

        Returns:
            (shift per supported species in kcal/mol, scale in kcal/mol).
        """
        e = np.asarray(energies, dtype=np.float64).reshape(-1)
        comp = self._composition(species, len(e))
        shift, *_ = np.linalg.lstsq(comp, e, rcond=_LSTSQ_RCOND)
        scale = _force_rms(forces) if forces is not None else 0.0
        if not scale > 0.0:
            atoms = comp.sum(axis=1)
            scale = float(np.std((e - comp @ shift) / atoms)) if len(e) > 1 else 0.0
        if not (np.isfinite(scale) and scale > _MIN_SCALE):
            scale = 1.0
        if not np.all(np.isfinite(shift)):
            raise DataError("energies contain non-finite values; clean the training set before fitting")
        self.shift.copy_(torch.as_tensor(shift, dtype=self.shift.dtype))
        self.scale.fill_(scale)
        return [float(s) for s in shift], float(scale)

    def add_reference_energies(self, delta: Tensor) -> None:
        """Add ``delta`` (S,) kcal/mol per atom of each supported species to the shift."""
        with torch.no_grad():
            self.shift += delta.to(dtype=self.shift.dtype, device=self.shift.device)

    def _composition(self, species: Any, n_frames: int) -> np.ndarray:
        """(F, S) counts of each supported species in each frame."""
        if isinstance(species, (np.ndarray, Tensor)) and np.asarray(species).ndim <= 2:
            arr = np.asarray(species, dtype=np.int64)
            frames = [arr] * n_frames if arr.ndim == 1 else list(arr)
        else:
            frames = [np.asarray(s, dtype=np.int64).reshape(-1) for s in species]
        if len(frames) != n_frames:
            raise DataError(f"fit_shift_scale: {len(frames)} species rows for {n_frames} energies")
        known = {z: k for k, z in enumerate(self.species)}
        comp = np.zeros((n_frames, len(known)))
        for f, zs in enumerate(frames):
            unknown = sorted(set(zs.tolist()) - set(known))
            if unknown:
                raise DataError(
                    f"fit_shift_scale: atomic number(s) {unknown} are not among "
                    f"the model's species {self.species}"
                )
            np.add.at(comp[f], [known[int(z)] for z in zs], 1.0)
        return comp


def _force_rms(forces: Any) -> float:
    if isinstance(forces, (np.ndarray, Tensor)):
        flat = np.asarray(forces, dtype=np.float64).reshape(-1)
    else:
        flat = np.concatenate([np.asarray(f, dtype=np.float64).reshape(-1) for f in forces])
    return float(np.sqrt(np.mean(flat * flat))) if flat.size else 0.0
