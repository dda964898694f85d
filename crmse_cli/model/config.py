"""The model's hyper-parameters: one frozen dataclass, recorded with every checkpoint."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from crmse_cli.errors import CrmseError
from crmse_cli.validate import check_config

ARCHITECTURES = ("painn", "schnet", "mace", "module")
"""Built-in networks, MACE through mace-torch (``model/mace_adapter.py``), and ``module``: a
wrapped torch module of your own (``model/module_potential.py``)."""
ENVELOPES = ("cosine", "polynomial")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
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
    """

    architecture: str = "painn"
    features: int = 64
    layers: int = 3
    n_rbf: int = 20
    cutoff_A: float = 5.0
    envelope: str = "polynomial"
    envelope_p: int = 6
    dtype: str = "float32"

    def __post_init__(self) -> None:
        check_config(self, prefix="model.")
        if self.architecture not in ARCHITECTURES:
            raise CrmseError(
                f"model.architecture must be one of {', '.join(ARCHITECTURES)}, got {self.architecture!r}"
            )
        if self.envelope not in ENVELOPES:
            raise CrmseError(f"model.envelope must be one of {', '.join(ENVELOPES)}, got {self.envelope!r}")
        if self.dtype not in DTYPES:
            raise CrmseError(f"model.dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        for name in ("features", "layers", "n_rbf"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise CrmseError(f"model.{name} must be a positive integer, got {value!r}")
        if self.architecture == "painn" and self.features < 2:
            raise CrmseError("model.features must be at least 2 for painn (the readout halves it)")
        if not isinstance(self.envelope_p, int) or self.envelope_p < 2:
            raise CrmseError(f"model.envelope_p must be an integer >= 2, got {self.envelope_p!r}")
        if not float(self.cutoff_A) > 0.0:
            raise CrmseError(f"model.cutoff_A must be a positive length in Å, got {self.cutoff_A!r}")

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype named by ``dtype``."""
        return DTYPES[self.dtype]
