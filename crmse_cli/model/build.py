"""Building a fresh potential from its config: PaiNN and SchNet here, MACE through mace-torch.

Its own module, above both :mod:`crmse_cli.model.potential` and
:mod:`crmse_cli.model.mace_adapter` (which wraps modules as potentials), so that neither imports
the other. ``crmse_cli.model.build_potential`` re-exports it.
"""

from __future__ import annotations

from collections.abc import Sequence

from crmse_cli.errors import CrmseError
from crmse_cli.model.config import ModelConfig
from crmse_cli.model.mace_adapter import build_mace
from crmse_cli.model.potential import NETWORKS, Potential


def build_potential(config: ModelConfig, species: Sequence[int]) -> Potential:
    """A freshly initialised potential in ``config.dtype`` for the given atomic numbers.

    Weights are drawn from torch's global generator: seed it (``torch.manual_seed``) first for a
    reproducible initialisation. ``mace`` builds mace-torch's ScaleShiftMACE (the ``mace`` extra).
    """
    if config.architecture == "mace":
        return build_mace(config, species)
    if config.architecture not in NETWORKS:
        raise CrmseError(
            f"a {config.architecture!r} model is not built from a config; wrap your module with "
            "crmse_cli.model.module_potential.wrap_module"
        )
    return Potential(config, species).to(config.torch_dtype)
