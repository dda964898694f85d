"""MACE models of mace-torch as crmse energy modules (the optional ``mace`` extra).

:class:`MACEEnergy` wraps a mace-torch model (a ``.model`` file as ``mace_run_train`` saves it,
any size, float32 or float64) as ``module(positions (B,N,3) Å, species (N,)) -> (B,) kcal/mol``
for :class:`crmse_cli.model.module_potential.ModulePotential`. It builds MACE's input dict for B
replicas of one molecule at once (one-hot ``node_attrs`` over the model's z table, an
``edge_index`` of every pair closer than its ``r_max``, zero ``shifts`` as there is no cell,
``batch`` and ``ptr``), calls the model with ``compute_force=False`` (its force head is off:
forces come from ``crmse_cli.model.forces`` like for every potential) and converts eV to
kcal/mol with :mod:`crmse_cli.units`. MACE's own E0s are the only reference energies.

:func:`build_mace` makes a fresh ScaleShiftMACE for ``crmse pretrain --architecture mace`` from a
:class:`ModelConfig` (mapping in docs/models.md), :func:`export_mace` writes a model back in
mace-torch's format (``torch.save(model)``), which ``mace.calculators.MACECalculator`` loads.

Note: importing ``mace`` sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` in the process (mace-torch's
choice); crmse's own checkpoint reads pass ``weights_only=True`` explicitly and stay safe.
"""

from __future__ import annotations

import copy
import io
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from crmse_cli.errors import CrmseError, DataError, NotFoundError
from crmse_cli.fileio import atomic_path
from crmse_cli.model.config import DTYPES, MACE_DEFAULTS, ModelConfig, torch_dtype
from crmse_cli.model.mace_env import default_dtype, quiet, require_mace
from crmse_cli.model.mace_spec import build_model, model_spec
from crmse_cli.model.module_potential import ModulePotential
from crmse_cli.model.trust import refuse_untrusted
from crmse_cli.units import EV_PER_KCAL_PER_MOL, KCAL_PER_MOL_PER_EV

log = logging.getLogger(__name__)

MAX_ELL = 3  # spherical harmonics of the edges (mace-torch default)
CORRELATION = 3  # body order of the product basis minus one (mace-torch default)
MLP_IRREPS = "16x0e"  # readout MLP of the last layer (mace-torch default)
AVG_NUM_NEIGHBORS = 8.0  # message normalisation; every atom of ethanol has 8 neighbours within 5 Å
INTERACTION = "RealAgnosticResidualInteractionBlock"  # mace-torch's default interaction block


class MACEEnergy(nn.Module):
    """A mace-torch model as an energy module: (B,N,3) Å + (N,) species -> (B,) kcal/mol.

    Args:
        model: a mace-torch ``MACE`` / ``ScaleShiftMACE`` (multi-head models: the first head).
    """

    z_index: Tensor

    def __init__(self, model: Any) -> None:
        super().__init__()
        if not hasattr(model, "atomic_numbers") or not hasattr(model, "r_max"):
            raise DataError(f"{type(model).__name__} is not a mace-torch model (no atomic_numbers / r_max)")
        self.model: Any = model  # mace-torch's classes are untyped
        self.zs = [int(z) for z in model.atomic_numbers.tolist()]
        self.r_max_A = float(model.r_max)
        table = torch.full((119,), -1, dtype=torch.long)
        table[torch.tensor(self.zs)] = torch.arange(len(self.zs))
        self.register_buffer("z_index", table, persistent=False)
        self._spec: dict[str, Any] | None = None
        self._spec_done = False  # spec() worked out (it may still be None)

    def forward(self, positions: Tensor, species: Tensor) -> Tensor:
        """(B,) energies in kcal/mol of B replicas ``positions`` (B, N, 3) Å of molecule ``species``."""
        data = self.inputs(positions, species)
        out = self.model(data, training=self.training, compute_force=False)
        energy: Tensor = out["energy"] * KCAL_PER_MOL_PER_EV
        return energy

    def inputs(self, positions: Tensor, species: Tensor) -> dict[str, Tensor]:
        """MACE's input dict for B replicas of one molecule, built without a loop over replicas."""
        n_structures, n_atoms = int(positions.shape[0]), int(positions.shape[1])
        device, dtype = positions.device, positions.dtype
        column = self.z_index.to(device)[species.to(device=device, dtype=torch.long)]
        if bool((column < 0).any()):
            unknown = sorted(set(species.tolist()) - set(self.zs))
            raise CrmseError(f"atomic number(s) {unknown} are not in the MACE model's z table {self.zs}")
        one_hot = nn.functional.one_hot(column, len(self.zs)).to(dtype)  # (N, S)
        with torch.no_grad():  # the neighbour list is a selection, not part of the energy's graph
            x = positions.detach()
            d2 = (x.unsqueeze(1) - x.unsqueeze(2)).pow(2).sum(-1)  # (B, N, N)
            inside = d2 < self.r_max_A**2
            inside &= ~torch.eye(n_atoms, dtype=torch.bool, device=device)
            b, i, j = inside.nonzero(as_tuple=True)
        offset = b * n_atoms
        edge_index = torch.stack([offset + j, offset + i])  # [sender, receiver]
        n_edges = int(edge_index.shape[1])
        return {
            "positions": positions.reshape(n_structures * n_atoms, 3),
            "node_attrs": one_hot.repeat(n_structures, 1),
            "edge_index": edge_index,
            "shifts": torch.zeros((n_edges, 3), dtype=dtype, device=device),
            "unit_shifts": torch.zeros((n_edges, 3), dtype=dtype, device=device),
            "cell": torch.zeros((3 * n_structures, 3), dtype=dtype, device=device),
            "batch": torch.arange(n_structures, device=device).repeat_interleave(n_atoms),
            "ptr": torch.arange(n_structures + 1, device=device) * n_atoms,
            "head": torch.zeros(n_structures, dtype=torch.long, device=device),
        }

    # -- pretraining from scratch (ModulePotential.fit_shift_scale / center_energies) -------------
    def fit_reference(self, species: Any, energies: Any, forces: Any | None = None) -> None:
        """Set MACE's E0s to the composition least squares of ``energies``.

        For a ScaleShiftMACE also its scale, to the RMS of ``forces`` (mace-torch's
        ``rms_forces_scaling``).

        Args:
            species: (N,) atomic numbers of the molecule (or (F, N)).
            energies: (F,) kcal/mol.
            forces: (F, N, 3) kcal/mol/Å or None.
        """
        e = np.asarray(energies, dtype=np.float64).reshape(-1) * EV_PER_KCAL_PER_MOL
        sp = np.asarray(species, dtype=np.int64)
        rows = np.broadcast_to(sp, (len(e), sp.shape[-1])) if sp.ndim == 1 else sp
        comp = np.stack([(rows == z).sum(axis=1) for z in self.zs], axis=1).astype(np.float64)
        e0, *_ = np.linalg.lstsq(comp, e, rcond=1e-10)
        self._set_e0(torch.as_tensor(e0))
        scale_shift = getattr(self.model, "scale_shift", None)
        if scale_shift is not None and forces is not None:
            f = np.asarray(forces, dtype=np.float64) * EV_PER_KCAL_PER_MOL
            rms = float(np.sqrt(np.mean(f * f))) if f.size else 0.0
            scale_shift.scale.fill_(rms if math.isfinite(rms) and rms > 1e-8 else 1.0)
            scale_shift.shift.fill_(0.0)

    def add_reference_energies(self, delta: Tensor) -> None:
        """Add ``delta`` (S,) kcal/mol to the E0 of each element (sorted atomic numbers)."""
        e0 = torch.atleast_2d(self.model.atomic_energies_fn.atomic_energies)[0]  # type: ignore[no-untyped-call]
        self._set_e0(e0.double().cpu() + delta.double().cpu() * EV_PER_KCAL_PER_MOL)

    def _set_e0(self, e0_eV: Tensor) -> None:
        buf = self.model.atomic_energies_fn.atomic_energies
        with torch.no_grad():
            if buf.ndim == 1:
                buf.copy_(e0_eV.to(buf))
            else:  # (heads, elements): the first head
                buf[0].copy_(e0_eV.to(buf))

    # -- what a crmse checkpoint stores ----------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The MACE model in mace-torch's own file format (``torch.save(model)``)."""
        buffer = io.BytesIO()
        torch.save(self.model, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, device: str | torch.device = "cpu") -> MACEEnergy:
        """Rebuild from :meth:`to_bytes` (this unpickles the model, as mace-torch does)."""
        require_mace()
        with quiet():
            model = torch.load(io.BytesIO(data), map_location=device, weights_only=False)
        return cls(model)

    def spec(self) -> dict[str, Any] | None:
        """The model's architecture as plain values (:mod:`crmse_cli.model.mace_spec`), or None.

        Worked out once per model: None when plain values cannot describe it, or when the model
        rebuilt from them (with these weights) gives other energies than this one.
        """
        if not self._spec_done:
            try:
                spec = model_spec(self.model)
                rebuilt = build_model(spec, self.model_dtype).to(self.z_index.device)
                rebuilt.load_state_dict(self.model.state_dict())
                self._spec = spec if self._same_energies(rebuilt.eval()) else None
            except Exception as exc:  # noqa: BLE001 - whatever fails, the pickle still holds the model
                log.debug("MACE model kept as a pickle only: %s", exc)
            self._spec_done = True
        return self._spec

    @classmethod
    def from_spec(cls, spec: Any, *, dtype: torch.dtype, device: str | torch.device = "cpu") -> MACEEnergy:
        """A model of the architecture ``spec`` describes (weights: load the state dict after).

        Raises:
            mace_spec.Unsupported: the spec cannot be rebuilt here (another mace-torch, unknown names).
        """
        require_mace()
        return cls(build_model(spec, dtype).to(device))

    @property
    def model_dtype(self) -> torch.dtype:
        """The dtype of the wrapped model's weights."""
        dtype: torch.dtype = next(p for p in self.model.parameters() if p.is_floating_point()).dtype
        return dtype

    def _same_energies(self, rebuilt: Any) -> bool:
        """Whether ``rebuilt`` gives this model's energies on a small probe geometry."""
        zs = self.zs if len(self.zs) > 1 else self.zs * 3
        i = torch.arange(len(zs), dtype=self.model_dtype)
        probe = torch.stack([1.1 * i, 0.3 * (i % 2), 0.2 * (i % 3)], dim=-1)[None].to(self.z_index.device)
        data = self.inputs(probe, torch.tensor(zs, device=self.z_index.device))
        with torch.no_grad(), quiet():  # neither model's train/eval mode is touched
            mine = self.model(dict(data), training=False, compute_force=False)["energy"]
            theirs = rebuilt(dict(data), training=False, compute_force=False)["energy"]
        return bool(torch.allclose(mine, theirs, rtol=1e-6, atol=1e-6))


def mace_config(model: Any) -> ModelConfig:
    """The :class:`ModelConfig` that records a mace-torch model in runs and checkpoints."""
    dtype = next(p for p in model.parameters() if p.is_floating_point()).dtype
    names = {torch_dtype(k): k for k in DTYPES}
    if dtype not in names:
        raise CrmseError(f"the MACE model is {dtype}; crmse runs float32 or float64 models")
    radial = getattr(model, "radial_embedding", None)
    bessel = getattr(getattr(radial, "bessel_fn", None), "bessel_weights", None)
    p = getattr(getattr(radial, "cutoff_fn", None), "p", None)
    try:
        features = int(model.products[0].linear.irreps_out[0].mul)
    except (AttributeError, IndexError, TypeError):
        features = int(MACE_DEFAULTS["features"])
    return ModelConfig(
        architecture="mace",
        features=max(features, 1),
        layers=int(getattr(model, "num_interactions", torch.tensor(len(model.interactions)))),
        n_rbf=len(bessel) if bessel is not None else int(MACE_DEFAULTS["n_rbf"]),
        cutoff_A=float(model.r_max),
        envelope="polynomial",
        envelope_p=max(int(p), 2) if p is not None else int(MACE_DEFAULTS["envelope_p"]),
        dtype=names[dtype],
    )


def mace_potential(model: nn.Module) -> ModulePotential:
    """Wrap a mace-torch model (in eval mode) as a crmse potential."""
    energy = MACEEnergy(model)
    pot = ModulePotential(energy, mace_config(model), energy.zs)
    return pot.eval()


def load_mace_model(
    path: Path | str, *, device: str | torch.device = "cpu", trust_code: bool = False
) -> nn.Module:
    """A mace-torch ``.model`` file (``torch.save(model)``), unpickled as mace-torch loads it.

    Args:
        path: the file.
        device: where to put the weights.
        trust_code: the user vouched for the file (``--trust-code``): unpickling runs its code,
            so without it the file is refused before it is read.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"MACE model {path} does not exist; pass the .model file mace_run_train wrote")
    if not trust_code:
        raise refuse_untrusted(path, "a model in mace-torch's format (a pickle)")
    require_mace()
    try:
        with quiet():
            model = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - unpickling raises many types for foreign files
        raise DataError(f"{path} is not a readable MACE model ({type(exc).__name__}: {exc})") from exc
    if not isinstance(model, nn.Module) or not hasattr(model, "atomic_numbers"):
        raise DataError(f"{path} holds a {type(model).__name__}, not a mace-torch model")
    return model


def build_mace(config: ModelConfig, species: Sequence[int]) -> ModulePotential:
    """A fresh ScaleShiftMACE (mace-torch's classes) for ``species``, hyper-parameters from ``config``.

    ``features`` -> hidden irreps ``{features}x0e``, ``layers`` -> interactions, ``n_rbf`` -> Bessel
    functions, ``cutoff_A`` -> r_max, ``envelope_p`` -> polynomial cutoff p; the rest are
    mace-torch's defaults (:data:`MAX_ELL`, :data:`CORRELATION`, :data:`MLP_IRREPS`,
    :data:`INTERACTION`) and :data:`AVG_NUM_NEIGHBORS`. E0s start at 0 and scale at 1: pretraining
    sets them from the training set (``fit_shift_scale``). Seed torch's global generator first.
    """
    require_mace()
    from e3nn import o3
    from mace import modules

    zs = sorted({int(z) for z in species})
    block = modules.interaction_classes[INTERACTION]
    with default_dtype(config.torch_dtype), quiet():
        model = modules.ScaleShiftMACE(
            r_max=float(config.cutoff_A),
            num_bessel=config.n_rbf,
            num_polynomial_cutoff=config.envelope_p,
            max_ell=MAX_ELL,
            interaction_cls=block,
            interaction_cls_first=block,
            num_interactions=config.layers,
            num_elements=len(zs),
            hidden_irreps=o3.Irreps(f"{config.features}x0e"),
            MLP_irreps=o3.Irreps(MLP_IRREPS),
            atomic_energies=np.zeros(len(zs)),
            avg_num_neighbors=AVG_NUM_NEIGHBORS,
            atomic_numbers=zs,
            correlation=CORRELATION,
            gate=nn.functional.silu,
            atomic_inter_scale=1.0,
            atomic_inter_shift=0.0,
        )
    model = model.to(config.torch_dtype)
    energy = MACEEnergy(model)
    return ModulePotential(energy, mace_config(model), zs)


def is_mace(potential: nn.Module) -> bool:
    """Whether ``potential`` wraps a mace-torch model."""
    return isinstance(potential, ModulePotential) and isinstance(potential.module, MACEEnergy)


def export_mace(potential: nn.Module, path: Path | str) -> Path:
    """Write the MACE model inside ``potential`` in mace-torch's format (atomically, on the CPU).

    The file is ``torch.save(model)`` as mace-torch writes it, so
    ``mace.calculators.MACECalculator(model_paths=path)`` and mace-torch's tools load it.
    """
    if not is_mace(potential):
        raise CrmseError("only MACE models can be exported to mace-torch's format")
    assert isinstance(potential, ModulePotential) and isinstance(potential.module, MACEEnergy)
    model = copy.deepcopy(potential.module.model).cpu().eval()
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(model, tmp)
    return path
