"""crmse potentials as torch-sim models (the optional ``torchsim`` extra).

:class:`TorchSimModel` wraps any potential crmse loads (PaiNN, SchNet, MACE, a wrapped module;
or a checkpoint file) as a torch-sim ``ModelInterface``: a batched ``SimState`` in (positions Å,
``atomic_numbers``, ``system_idx``), ``energy`` (n_systems,) in eV and ``forces`` (n_atoms, 3) in
eV/Å out, torch-sim's metal units, converted from crmse's kcal/mol with :mod:`crmse_cli.units`.
Forces come from :mod:`crmse_cli.model.forces`, as everywhere else in crmse.

When every system of the state is the same molecule (same atoms in the same order: the
replicas of batched MD) the positions are viewed as (B, N, 3) and go through
:func:`~crmse_cli.model.forces.force_field`, the very function crmse's samplers call (compiled
too, with ``compiled=True``), so a benchmark of torch-sim's integrators against crmse's compares
integrators over one force path. Different molecules in one state go through
:func:`~crmse_cli.model.graph.collate`. Molecules only: a periodic state is refused.

Importing this module imports ``torch_sim``; without it the import is one ``CrmseError`` line
naming the extra. Nothing else in crmse imports this module.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from crmse_cli.errors import CrmseError
from crmse_cli.model.checkpoint import load_checkpoint
from crmse_cli.model.forces import ForceFn, force_field, forces_from_energy
from crmse_cli.model.graph import collate
from crmse_cli.model.potential import Potential
from crmse_cli.units import EV_PER_KCAL_PER_MOL

MISSING_EXTRA = "torch-sim is not installed: pip install 'crmse[torchsim]' (package torch-sim-atomistic)"

try:
    with warnings.catch_warnings():  # torch-sim's own imports warn about its dependencies' APIs
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch_sim.models.interface import ModelInterface
        from torch_sim.state import SimState
except ImportError as exc:  # pragma: no cover - the extra is installed in CI
    raise CrmseError(MISSING_EXTRA) from exc


class TorchSimModel(ModelInterface):  # type: ignore[misc]  # torch-sim ships no type hints
    """A crmse potential behind torch-sim's ``ModelInterface`` (energy in eV, forces in eV/Å).

    Args:
        model: a :class:`Potential` or a checkpoint path (``load_checkpoint``).
        device: torch device of the model (and of the states it is given).
        dtype: "float32" or "float64" to override a checkpoint's dtype (ignored for a Potential).
        trust_code: the checkpoint may run the code it stores (see ``load_checkpoint``).
        compiled: forces of same-molecule batches through ``torch.compile`` (``model/compiled.py``;
            eager with one logged line where it cannot run).
        cache_dir: where compiled kernels are kept for later processes (None: inductor's default).
    """

    def __init__(
        self,
        model: Potential | str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: str | None = None,
        trust_code: bool = False,
        compiled: bool = False,
        cache_dir: Path | None = None,
    ) -> None:
        super().__init__()
        if isinstance(model, Potential):
            potential = model
        else:
            potential, _ = load_checkpoint(model, device=str(device), dtype=dtype, trust_code=trust_code)
        self._device = torch.device(device)
        self.potential = potential.to(self._device)
        self._dtype = self.potential.dtype
        self._compute_forces = True
        self._compute_stress = False  # molecules: no cell, no stress
        self._memory_scales_with = "n_atoms_x_density"
        self.compiled = compiled
        self.cache_dir = cache_dir
        self._force_fns: dict[tuple[int, ...], ForceFn] = {}
        # The last (atomic_numbers, system_idx) tensors seen and the molecule they hold, or None
        # for a state of different molecules: integrators keep both tensors across steps.
        self._last: tuple[Tensor, Tensor, Tensor | None] | None = None

    def forward(self, state: Any, **kwargs: Any) -> dict[str, Tensor]:
        """``{"energy": (n_systems,) eV, "forces": (n_atoms, 3) eV/Å}`` of a ``SimState`` (or its dict).

        The state is not modified; outputs are detached, in the state's dtype.
        """
        if not isinstance(state, SimState):
            state = SimState(**state)
        if state.pbc:
            raise CrmseError("crmse potentials are for molecules: give torch-sim a state with pbc=False")
        positions = state.positions.to(self._device, self._dtype)
        molecule = self._molecule(state.atomic_numbers, state.system_idx)
        if molecule is not None:
            n_atoms = int(molecule.shape[0])
            force_fn = self._force_fn(molecule)
            energy, forces = force_fn(positions.reshape(-1, n_atoms, 3))
            forces = forces.reshape(-1, 3)
        else:
            energy, forces = self._mixed(positions, state.atomic_numbers, state.system_idx)
        return {
            "energy": (energy * EV_PER_KCAL_PER_MOL).to(state.dtype),
            "forces": (forces * EV_PER_KCAL_PER_MOL).to(state.dtype),
        }

    def _molecule(self, atomic_numbers: Tensor, system_idx: Tensor) -> Tensor | None:
        """(N,) atomic numbers when the state is B replicas of one N-atom molecule, else None."""
        last = self._last
        if last is not None and last[0] is atomic_numbers and last[1] is system_idx:
            return last[2]
        counts = torch.bincount(system_idx)
        n_systems, n_atoms = int(counts.shape[0]), int(counts[0])
        molecule: Tensor | None = None
        if bool((counts == n_atoms).all()):
            rows = atomic_numbers.reshape(n_systems, n_atoms)
            order = torch.arange(n_systems, device=system_idx.device).repeat_interleave(n_atoms)
            if bool((rows == rows[:1]).all()) and torch.equal(system_idx, order):
                molecule = rows[0].to(self._device, torch.long)
        self._last = (atomic_numbers, system_idx, molecule)
        return molecule

    def _force_fn(self, molecule: Tensor) -> ForceFn:
        key = tuple(int(z) for z in molecule.tolist())
        if key not in self._force_fns:
            self._force_fns[key] = force_field(
                self.potential, molecule, compiled=self.compiled, cache_dir=self.cache_dir
            )
        return self._force_fns[key]

    def _mixed(self, positions: Tensor, atomic_numbers: Tensor, system_idx: Tensor) -> tuple[Tensor, Tensor]:
        """Energies (S,) kcal/mol and forces (A, 3) kcal/mol/Å of a state of different molecules."""
        if bool((system_idx[1:] < system_idx[:-1]).any()):
            raise CrmseError("the state's systems must be in order: system_idx must not decrease")
        pos = positions.detach().requires_grad_(True)
        counts = torch.bincount(system_idx).tolist()
        numbers = atomic_numbers.to(self._device, torch.long)
        molecules = list(zip(torch.split(pos, counts), torch.split(numbers, counts), strict=True))
        energy = self.potential(collate(molecules))
        forces = forces_from_energy(energy, pos, create_graph=False)
        return energy.detach(), forces.detach()


def replica_state(positions: Tensor, species: Tensor, masses_amu: Tensor, *, box_A: float = 100.0) -> Any:
    """A non-periodic torch-sim ``SimState`` of B replicas of one molecule.

    Args:
        positions: (B, N, 3) Å.
        species: (N,) atomic numbers.
        masses_amu: (N,) masses, amu (torch-sim's mass unit too).
        box_A: edge of the cubic cell torch-sim requires; unused with ``pbc=False``.

    Returns:
        ``SimState`` with positions (B N, 3) in the dtype of ``positions`` and ``system_idx``
        0..B-1, each replica's atoms together.
    """
    n_replicas, n_atoms = int(positions.shape[0]), int(positions.shape[1])
    dtype, device = positions.dtype, positions.device
    return SimState(
        positions=positions.reshape(n_replicas * n_atoms, 3).clone(),
        masses=masses_amu.to(device, dtype).repeat(n_replicas),
        cell=torch.eye(3, dtype=dtype, device=device).repeat(n_replicas, 1, 1) * box_A,
        pbc=False,
        atomic_numbers=species.to(device, torch.long).repeat(n_replicas),
        system_idx=torch.arange(n_replicas, device=device).repeat_interleave(n_atoms),
    )
