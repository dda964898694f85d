"""PaiNN: polarizable atom interaction neural network (Schütt, Unke, Gastegger, ICML 2021).

Each atom carries scalar features s_i (F) and vector features v_i (3, F). One layer is

    message:  (a, b, c)_ij = phi(s_j) * W(r_ij),  phi = Linear-SiLU-Linear (F -> 3F),
              W(r) = Linear(rbf(r)) * f_c(r)  (rbf = sin(n pi r / r_c) / r),
              s_i += sum_j a_ij,   v_i += sum_j (b_ij v_j + c_ij r_ij / |r_ij|)
    update:   U v_i, V v_i (channel mixing, no bias),
              (a_vv, a_sv, a_ss) = MLP(s_i, |V v_i|),
              v_i += a_vv U v_i,   s_i += a_sv <U v_i, V v_i> + a_ss

and the energy is a sum of atomic readouts MLP(s_i). Scalars only see distances, norms and dot
products of vectors, so the energy is invariant and the forces equivariant under rotations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from crmse_cli.model.config import ModelConfig
from crmse_cli.model.graph import Layout
from crmse_cli.model.layers import AtomisticNetwork, mlp
from crmse_cli.model.radial import RadialBasis

# Added under the square root of |V v|^2: the norm of a zero vector feature (an isolated atom)
# would otherwise have an infinite derivative.
_NORM_EPS = 1e-8


class PaiNN(AtomisticNetwork):
    """Equivariant message passing with scalar and vector features.

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
        # The filters of all layers in one weight (3 F L, n_rbf + 1). The basis gets a constant
        # channel, so the last column is the filters' bias, and multiplying the narrow basis by
        # the envelope replaces multiplying the wide filters (3F per layer).
        self.filter = nn.Linear(config.n_rbf + 1, 3 * nf * n_layers, bias=False)
        self.message = nn.ModuleList([mlp(nf, nf, 3 * nf) for _ in range(n_layers)])
        self.mix = nn.ModuleList([nn.Linear(nf, 2 * nf, bias=False) for _ in range(n_layers)])
        self.update = nn.ModuleList([mlp(2 * nf, nf, 3 * nf) for _ in range(n_layers)])
        self.readout = mlp(nf, nf // 2, 1)

    def atomic_outputs(self, layout: Layout, index: Tensor) -> Tensor:
        """Per-atom outputs (B, N) dense or (A,) sparse; see ``AtomisticNetwork``."""
        unit, basis = self.radial.enveloped(layout.pair_vectors(), layout.keep)
        # One (F, n_rbf + 1) weight block per layer and filter: separate matmuls give
        # contiguous pair tensors, and no pair-sized concatenation in the backward pass (which
        # splitting one wide filter tensor would cost).
        blocks = torch.split(self.filter.weight, self.n_features, dim=0)
        s = layout.embed(self.embedding.weight, index)
        v: Tensor | None = None
        for layer in range(len(self.message)):
            # The first layer has no vector features yet, so its filter for them (k = 1) would
            # be a pair-sized matmul whose result nobody reads.
            w = [
                None if k == 1 and v is None else nn.functional.linear(basis, blocks[3 * layer + k])
                for k in range(3)
            ]
            s, v = self._message(layer, layout, s, v, w, unit)
            s, v = self._update(layer, s, v)
        out: Tensor = self.readout(s).squeeze(-1)
        return out

    def _message(
        self,
        layer: int,
        layout: Layout,
        s: Tensor,
        v: Tensor | None,
        w: list[Tensor | None],
        unit: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Message block: s (.., F), v (.., 3, F) or None before the first layer.

        ``w`` holds the 3 pair filters; the second is None when ``v`` is None.
        """
        w_s, w_v, w_r = w
        assert w_s is not None and w_r is not None
        h_s, h_v, h_r = self.message[layer](s).split(self.n_features, dim=-1)
        ds = layout.reduce(layout.gather(h_s) * w_s)
        # phi_v(s_j) v_j is a per-atom product: form it before going to pairs.
        u = None if v is None else h_v.unsqueeze(-2) * v
        dv = layout.vector_message(w_v, u, layout.gather(h_r) * w_r, unit)
        return s + ds, dv if v is None else v + dv

    def _update(self, layer: int, s: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Update block: mixes vector channels and exchanges information between s and v."""
        uv, vv = self.mix[layer](v).split(self.n_features, dim=-1)
        v_norm = torch.sqrt((vv * vv).sum(-2) + _NORM_EPS)
        a = self.update[layer](torch.cat([s, v_norm], dim=-1))
        a_vv, a_sv, a_ss = a.split(self.n_features, dim=-1)
        s = s + a_ss + a_sv * (uv * vv).sum(-2)
        return s, v + a_vv.unsqueeze(-2) * uv
