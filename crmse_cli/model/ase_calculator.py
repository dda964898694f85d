"""An ASE calculator over a crmse potential: Å in, eV and eV/Å out (ASE's units).

Usage: ``atoms.calc = CrmseCalculator("run/checkpoints/best.pt")``, then
``atoms.get_potential_energy()`` gives eV and ``atoms.get_forces()`` eV/Å.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from crmse_cli.errors import CrmseError
from crmse_cli.model.checkpoint import load_checkpoint
from crmse_cli.model.forces import energy_and_forces
from crmse_cli.model.potential import Potential
from crmse_cli.units import EV_PER_KCAL_PER_MOL


class CrmseCalculator(Calculator):
    """Energy and forces of a crmse potential for ASE (non-periodic molecules).

    Args:
        model: a checkpoint path (``save_checkpoint``) or a ``Potential``.
        device: torch device to run on.
        dtype: "float32" or "float64" to override a checkpoint's dtype (ignored for a Potential).
        trust_code: the checkpoint may run the code it stores (a MACE model or your own module,
            pickled); only for files you trust (see ``load_checkpoint``).
        **kwargs: passed to ``ase.calculators.calculator.Calculator``.
    """

    implemented_properties: list[str] = ["energy", "free_energy", "forces"]  # noqa: RUF012

    def __init__(
        self,
        model: str | Path | Potential,
        *,
        device: str = "cpu",
        dtype: str | None = None,
        trust_code: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]  # ASE is untyped
        if isinstance(model, Potential):
            self.potential = model
        else:
            self.potential, _ = load_checkpoint(model, device=device, dtype=dtype, trust_code=trust_code)
        self.device = torch.device(device)
        self.potential.to(self.device)
        self._species = set(self.potential.species)

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = tuple(all_changes),
    ) -> None:
        """Fill ``self.results`` with energy / free_energy (eV) and forces (eV/Å) of ``atoms``."""
        super().calculate(atoms, list(properties), list(system_changes))  # type: ignore[no-untyped-call]
        assert self.atoms is not None  # set by Calculator.calculate
        numbers = np.asarray(self.atoms.get_atomic_numbers())
        unknown = sorted(set(numbers.tolist()) - self._species)
        if unknown:
            raise CrmseError(
                f"atoms contain atomic number(s) {unknown} unknown to this model "
                f"(built for {sorted(self._species)})"
            )
        if np.any(self.atoms.pbc):
            raise CrmseError("periodic boundary conditions are not supported: set atoms.pbc = False")
        dtype = self.potential.dtype
        positions = torch.as_tensor(self.atoms.get_positions(), dtype=dtype, device=self.device).unsqueeze(0)
        species = torch.as_tensor(numbers, dtype=torch.long, device=self.device)
        energy, forces = energy_and_forces(self.potential, positions, species, create_graph=False)
        energy_ev = float(energy[0]) * EV_PER_KCAL_PER_MOL
        self.results = {
            "energy": energy_ev,
            "free_energy": energy_ev,
            "forces": forces[0].cpu().double().numpy() * EV_PER_KCAL_PER_MOL,
        }
