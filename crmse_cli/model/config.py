"""The model's hyper-parameters: one frozen dataclass, recorded with every checkpoint.

Torch-free (torch only inside :func:`torch_dtype`): the CLI builds ``pretrain``'s options from
these declarations, and ``crmse --help`` loads no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from crmse_cli.settings import setting
from crmse_cli.validate import ConfigError, check_config

if TYPE_CHECKING:
    import torch

ARCHITECTURES = ("painn", "schnet", "mace", "module")
"""Built-in networks, MACE through mace-torch (``model/mace_adapter.py``), and ``module``: a
wrapped torch module of your own (``model/module_potential.py``)."""
ENVELOPES = ("cosine", "polynomial")
DTYPES = ("float32", "float64")
"""The model dtypes, by name (:func:`torch_dtype` gives the torch dtype)."""
PAIR_REPULSIONS = ("none", "zbl")
"""Fixed pair repulsions a built-in network can be trained on top of (``model/zbl.py``)."""
MACE_DEFAULTS: dict[str, int | float] = {
    "features": 64,
    "layers": 2,
    "n_rbf": 8,
    "envelope_p": 5,
    "cutoff_A": 5.0,
}
"""Model fields ``--architecture mace`` starts from: hidden irreps 64x0e, 2 interactions, 8 Bessel
functions, polynomial cutoff p = 5 at 5 Å (mace-torch's defaults except 64 channels and L = 0)."""


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the GNN potential (units in the names).

    The defaults were chosen for rMD17 on a small CPU. Measured on one core: energy + forces of
    ethanol at ~2500 replica-steps/s and aspirin at ~650 (the Langevin hot path), training
    at ~780 ethanol frames/s (batch 32); a 5-minute single-core training on ethanol's 1000
    ``train_01`` frames (Adam 1e-3 with cosine decay, batch 32, loss 0.05 MSE_E + MSE_F)
    reached a test energy MAE of 0.16 kcal/mol and force MAE of 0.72 kcal/mol/Å. F = 128 was
    no better at equal time and is 2-3x slower to sample.

    Attributes:
        architecture: "painn" (equivariant scalar + vector features, Schütt et al. 2021),
            "schnet" (invariant continuous-filter convolutions, Schütt et al. 2018), "mace"
            (mace-torch's ScaleShiftMACE, the ``mace`` extra; see docs/models.md for how the
            fields below map onto it) or "module" (a torch module of your own, wrapped by
            ``crmse_cli.model.module_potential.ModulePotential``).
        features: width F of the atom features (scalar channels; PaiNN has as many vector
            channels per Cartesian component).
        layers: number of message-passing (interaction) layers.
        n_rbf: number of radial basis functions sin(n pi r / r_c) / r, n = 1..n_rbf.
        cutoff_A: cutoff radius r_c in Å; pairs farther apart do not interact at all.
        envelope: smooth cutoff function f_c(r): "polynomial" (p = ``envelope_p``, value and first
            two derivatives vanish at r_c) or "cosine" (0.5 (cos(pi r / r_c) + 1); its second
            derivative jumps at r_c).
        envelope_p: exponent p of the polynomial envelope (>= 2).
        dtype: floating-point type of weights and computations, "float32" or "float64".
        pair_repulsion: "zbl" adds the ZBL screened-nuclear repulsion, switched off at the sum of
            covalent radii (``model/zbl.py``), to the network's energy; "none" (default) adds nothing.
    """

    architecture: str = setting(
        "painn",
        choices=ARCHITECTURES,
        help="painn, schnet or mace (mace-torch's ScaleShiftMACE; small defaults in docs/models.md).",
    )
    features: int = setting(64, range="[1, 100000]", help="Width F of the atom features.", cli=False)
    layers: int = setting(3, range="[1, 1000]", help="Message-passing layers.", cli=False)
    n_rbf: int = setting(20, range="[1, 100000]", help="Radial basis functions.", cli=False)
    cutoff_A: float = setting(5.0, range="(0, 1000]", help="Cutoff radius, Å.", cli=False)
    envelope: str = setting(
        "polynomial", choices=ENVELOPES, help="Smooth cutoff: polynomial or cosine.", cli=False
    )
    envelope_p: int = setting(6, range="[2, 1000]", help="Exponent of the polynomial envelope.", cli=False)
    dtype: str = setting("float32", choices=DTYPES, help="The model's dtype.")
    pair_repulsion: str = setting(
        "none",
        choices=PAIR_REPULSIONS,
        help="A fixed short-range pair repulsion under the network: none, or zbl (ZBL, off "
        "beyond the summed covalent radii; model/zbl.py).",
    )

    def __post_init__(self) -> None:
        check_config(self, prefix="model.")  # types, ranges and choices declared on the fields
        if self.architecture == "painn" and self.features < 2:
            raise ConfigError("model.features must be at least 2 for painn (the readout halves it)")
        if self.pair_repulsion != "none" and self.architecture not in ("painn", "schnet"):
            raise ConfigError(
                f"model.pair_repulsion = {self.pair_repulsion!r} is for painn and schnet; "
                "a MACE model has its own (mace-torch's pair_repulsion)"
            )

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype named by ``dtype``."""
        return torch_dtype(self.dtype)


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of one of :data:`DTYPES`, e.g. ``torch.float32`` for "float32"."""
    import torch  # deferred: only model code, which has loaded torch already, asks

    dtypes = {"float32": torch.float32, "float64": torch.float64}
    return dtypes[name]
