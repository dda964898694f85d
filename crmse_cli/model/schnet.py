"""SchNet-style continuous-filter convolutions (Schütt et al., J. Chem. Phys. 148, 241722, 2018).

Invariant scalar features only. One interaction layer is

    x_j = Linear(h_j)  (no bias),   W_l(r) = MLP_l(rbf(r)) * f_c(r),
    h_i += MLP(sum_j x_j * W_l(r_ij))

with rbf = sin(n pi r / r_c) / r, and the energy is a sum of atomic readouts MLP(h_i). SiLU
replaces the original shifted softplus (both are smooth; SiLU matches PaiNN here).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from crmse_cli.model.config import ModelConfig
from crmse_cli.model.graph import Layout
from crmse_cli.model.layers import AtomisticNetwork, mlp
from crmse_cli.model.radial import RadialBasis


class SchNet(AtomisticNetwork):
    """Invariant continuous-filter message passing.

    Args:
        config: hyper-parameters (features F, layers, n_rbf, cutoff_A, envelope).
        species: atomic numbers to embed.
    """

    def __init__(self, config: ModelConfig, species: Sequence[int]) -> None:
        super().__init__(config, species)
        nf, n_layers = config.features, config.layers
        self.n_features = nf
        self.embedding = nn.Embedding(len(self.species), nf)
        self.radial = RadialBasis(config.n_rbf, config.cutoff_A, config.envelope, config.envelope_p)
        # First filter layer of all interactions in one matmul over the narrow basis.
        self.filter_in = nn.Linear(config.n_rbf, nf * n_layers)
        self.filter_act = nn.SiLU()
        self.filter_out = nn.ModuleList([nn.Linear(nf, nf) for _ in range(n_layers)])
        self.in2f = nn.ModuleList([nn.Linear(nf, nf, bias=False) for _ in range(n_layers)])
        self.f2out = nn.ModuleList([mlp(nf, nf, nf) for _ in range(n_layers)])
        self.readout = mlp(nf, max(nf // 2, 1), 1)

    def atomic_outputs(self, layout: Layout, index: Tensor) -> Tensor:
        """Per-atom outputs (B, N) dense or (A,) sparse; see ``AtomisticNetwork``."""
        _, rbf, fc = self.radial(layout.pair_vectors(), layout.keep)
        hidden = self.filter_act(self.filter_in(rbf)).split(self.n_features, dim=-1)
        h = layout.embed(self.embedding.weight, index)
        for layer, pre in enumerate(hidden):
            w = self.filter_out[layer](pre) * fc
            m = layout.gather(self.in2f[layer](h)) * w
            h = h + self.f2out[layer](layout.reduce(m))
        out: Tensor = self.readout(h).squeeze(-1)
        return out
