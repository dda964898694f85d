"""ZBL short-range pair repulsion, added to a learned potential (``model.pair_repulsion = "zbl"``).

The universal screened Coulomb repulsion of Ziegler, Biersack and Littmark (1985),

    E_ij(r) = k_e Z_i Z_j / r * phi(r / a_ij) * u(r / r_ij),
    phi(x) = 0.18175 e^(-3.19980 x) + 0.50986 e^(-0.94229 x) + 0.28022 e^(-0.40290 x)
             + 0.02817 e^(-0.20162 x),
    a_ij = 0.8854 a_0 / (Z_i^0.23 + Z_j^0.23),

switched off smoothly by the polynomial envelope u (p = 6) at r_ij, the sum of the two atoms'
covalent radii (ASE's, Cordero et al. 2008), as in MACE's ``ZBLBasis``: it acts only where two
atoms are closer than a bond, so a model trained with it keeps learning the chemistry and is
kept out of the collapsed geometries an MSE fit has never seen. k_e = e^2 / (4 pi eps_0) =
332.0637 kcal/mol Å. It is the first remedy MACE's maintainers prescribe for unstable MD, and
issue 29's baseline against CRMSE. It has no weights; the network is trained on top of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from crmse_cli.model.graph import Layout
from crmse_cli.model.radial import pair_distances, polynomial_envelope

COULOMB_KCAL_A = 332.0637
"""e^2 / (4 pi eps_0) in kcal/mol Å (14.3996 eV Å)."""
SCREENING_LENGTH_A = 0.46850
"""Å: the numerator of the universal screening length (0.8854 Bohr radii, as LAMMPS writes it)."""
_PHI_C = (0.18175, 0.50986, 0.28022, 0.02817)
_PHI_D = (3.19980, 0.94229, 0.40290, 0.20162)
ENVELOPE_P = 6


def zbl_pair_energy(r: Tensor, z_i: Tensor, z_j: Tensor, r_switch: Tensor) -> Tensor:
    """E_ij in kcal/mol at distance ``r`` (Å) of charges ``z_i``, ``z_j``, off at ``r_switch`` (Å)."""
    x = r * (z_i.pow(0.23) + z_j.pow(0.23)) / SCREENING_LENGTH_A
    phi = sum(c * torch.exp(-d * x) for c, d in zip(_PHI_C, _PHI_D, strict=True))
    return COULOMB_KCAL_A * z_i * z_j / r * phi * polynomial_envelope(r / r_switch, ENVELOPE_P)


class ZBLRepulsion(nn.Module):
    """The ZBL energy (B,) in kcal/mol of a layout, per species row of the potential.

    Args:
        species: the potential's atomic numbers, sorted (its species rows).
    """

    table: Tensor

    def __init__(self, species: Sequence[int]) -> None:
        super().__init__()
        from ase.data import covalent_radii  # deferred: ase is not loaded by importing a potential

        rows = [[float(z), float(covalent_radii[z])] for z in species]
        self.register_buffer("table", torch.tensor(rows))  # (S, 2): Z, covalent radius in Å

    def forward(self, layout: Layout, index: Tensor) -> Tensor:
        """(B,) ZBL energies in kcal/mol; ``index`` are the atoms' species rows."""
        atoms = layout.embed(self.table, index)  # (1, N, 2) dense, (A, 2) sparse
        receiver, sender = layout.receive(atoms), layout.gather(atoms)
        vectors = layout.pair_vectors()
        r = pair_distances(vectors)
        pair = zbl_pair_energy(
            r, receiver[..., :1], sender[..., :1], receiver[..., 1:] + sender[..., 1:]
        )
        if layout.keep is not None:
            pair = pair * layout.keep
        # Each pair appears once per atom: half of it to each.
        return layout.sum_atoms(0.5 * layout.reduce(pair)[..., 0])
