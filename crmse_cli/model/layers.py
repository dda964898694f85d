"""Building blocks shared by the networks: the species index map, MLPs, the network base class."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from crmse_cli.errors import CrmseError
from crmse_cli.model.config import ModelConfig
from crmse_cli.model.graph import Graph, Layout, layout_of

MAX_Z = 118


def mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    """Two-layer perceptron Linear -> SiLU -> Linear (SiLU is smooth, as forces need)."""
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.SiLU(), nn.Linear(n_hidden, n_out))


def check_species(species: Sequence[int]) -> list[int]:
    """The sorted distinct atomic numbers of ``species``; CrmseError if any is outside 1..118."""
    out = sorted({int(z) for z in species})
    if not out:
        raise CrmseError("a potential needs at least one species (atomic number 1..118)")
    bad = [z for z in out if not 1 <= z <= MAX_Z]
    if bad:
        raise CrmseError(f"atomic numbers must lie in 1..{MAX_Z}, got {bad}")
    return out


class SpeciesIndex(nn.Module):
    """Maps atomic numbers to rows 0..S-1 of the species the model was built for.

    Args:
        species: the atomic numbers the model supports (any subset of 1..118).
    """

    table: Tensor

    def __init__(self, species: Sequence[int]) -> None:
        super().__init__()
        self.species = check_species(species)
        table = torch.full((MAX_Z + 1,), -1, dtype=torch.long)
        table[torch.tensor(self.species)] = torch.arange(len(self.species))
        self.register_buffer("table", table)

    def forward(self, z: Tensor) -> Tensor:
        """Row indices (same shape as ``z``) of atomic numbers ``z``; CrmseError for unknown ones."""
        index = self.table[z.clamp(0, MAX_Z)]
        if bool((index < 0).any()) or bool((z > MAX_Z).any()):
            unknown = sorted({int(a) for a in torch.unique(z).tolist()} - set(self.species))
            raise CrmseError(
                f"atomic number(s) {unknown} unknown to this model (built for {self.species}); "
                "train a model on data that contains them"
            )
        return index


class AtomisticNetwork(nn.Module):
    """Base of the networks: per-atom outputs from a layout, summed per structure by ``forward``.

    Args:
        config: the model's hyper-parameters.
        species: atomic numbers the network embeds.
    """

    def __init__(self, config: ModelConfig, species: Sequence[int]) -> None:
        super().__init__()
        self.config = config
        self.species_index = SpeciesIndex(species)

    @property
    def species(self) -> list[int]:
        """The supported atomic numbers, sorted."""
        return list(self.species_index.species)

    def atomic_outputs(self, layout: Layout, index: Tensor) -> Tensor:
        """Unscaled per-atom outputs, (B, N) in the dense layout or (A,) in the sparse one.

        Args:
            layout: the batch's pair layout.
            index: species row indices of the layout's atoms ((N,) dense, (A,) sparse).
        """
        raise NotImplementedError

    def forward(self, graph: Graph) -> Tensor:
        """(B,) per-structure sums of the unscaled atomic outputs (no shift, no scale)."""
        layout = layout_of(graph, self.config.cutoff_A)
        index = self.species_index(layout.species)
        return layout.sum_atoms(self.atomic_outputs(layout, index))
