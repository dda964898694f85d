"""GFN-xTB energies and forces through tblite's Python interface, in the project's units.

tblite takes positions in Bohr and returns the energy in Hartree and the gradient in
Hartree/Bohr; everything here converts at the edge with the named factors of
:mod:`crmse_cli.units`, so callers see Å, kcal/mol and kcal/mol/Å only. Energies are the absolute
xTB energies as tblite gives them (no reference shift).

tblite is an optional dependency (``pip install 'crmse[xtb]'``); :func:`require_tblite` turns its
absence into one clear line. Pin one OpenMP thread per process (``OMP_NUM_THREADS=1``): a
9-atom molecule is too small to share, and on a loaded machine the default threads make a force
call 20x slower.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
from typing import Any

import numpy as np

from crmse_cli.data.xtb_config import check_method
from crmse_cli.errors import CrmseError, DataError
from crmse_cli.units import BOHR_PER_A, KCAL_PER_MOL_A_PER_HARTREE_BOHR, KCAL_PER_MOL_PER_HARTREE

MISSING_MESSAGE = "install the xtb extra: pip install 'crmse[xtb]'"


def require_tblite() -> Any:
    """Tblite's ``interface`` module, or a :class:`CrmseError` saying how to install it."""
    try:
        from tblite import interface
    except ImportError as exc:
        raise CrmseError(MISSING_MESSAGE) from exc
    return interface


def tblite_version() -> str:
    """The installed tblite's version string ("unknown" if its metadata is missing)."""
    try:
        return importlib.metadata.version("tblite")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class XtbForceField:
    """A reusable tblite calculator for one molecule: positions in Å -> (kcal/mol, kcal/mol/Å).

    Consecutive MD steps reuse the previous wavefunction as the SCF guess (about twice as fast).
    That makes a result depend, at the SCF tolerance, on the call history; ``fresh=True`` starts
    from tblite's default guess, so a call with ``fresh=True`` depends on the positions only
    (the generator uses it at every kept frame, which makes a resumed trajectory identical to an
    uninterrupted one).

    Args:
        species: (N,) atomic numbers.
        method: ``gfn2`` or ``gfn1``.
        positions_A: (N, 3) Å, any geometry of the molecule (tblite needs one to set up).
        charge: total charge, e.
    """

    def __init__(self, species: np.ndarray, method: str, positions_A: np.ndarray, charge: float = 0.0):
        interface = require_tblite()
        self.method = method
        self.species = np.asarray(species, dtype=np.int64)
        self.n_calls = 0
        x = np.asarray(positions_A, dtype=np.float64) * BOHR_PER_A
        try:
            self._calc = interface.Calculator(check_method(method), self.species, x, charge=charge)
        except Exception as exc:  # tblite raises its own error types for bad input
            raise DataError(f"tblite could not set up {method} for this molecule: {exc}") from exc
        self._calc.set("verbosity", 0)
        self._result: Any = None

    def __call__(self, positions_A: np.ndarray, *, fresh: bool = False) -> tuple[float, np.ndarray]:
        """Energy (kcal/mol) and forces (N, 3) kcal/mol/Å at ``positions_A`` (N, 3) Å."""
        x = np.asarray(positions_A, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise DataError("xTB was asked for forces at non-finite positions (the dynamics blew up)")
        try:
            self._calc.update(positions=x * BOHR_PER_A)
            # tblite prints SCF warnings on stdout at verbosity 0 too; keep the progress bar clean.
            with contextlib.redirect_stdout(io.StringIO()):
                res = self._calc.singlepoint(None if fresh or self._result is None else self._result)
        except Exception as exc:
            raise DataError(f"xTB ({self.method}) single point failed: {exc}") from exc
        self._result = res
        self.n_calls += 1
        energy = float(res.get("energy")) * KCAL_PER_MOL_PER_HARTREE
        forces = -np.asarray(res.get("gradient"), dtype=np.float64) * KCAL_PER_MOL_A_PER_HARTREE_BOHR
        return energy, forces


def energy_forces(
    species: np.ndarray, positions_A: np.ndarray, method: str = "gfn2"
) -> tuple[np.ndarray, np.ndarray]:
    """XTB labels of frames, each from tblite's default SCF guess.

    Args:
        species: (N,) atomic numbers.
        positions_A: (F, N, 3) or (N, 3) Å.
        method: ``gfn2`` or ``gfn1``.

    Returns:
        ``(energies (F,) kcal/mol, forces (F, N, 3) kcal/mol/Å)``.
    """
    x = np.asarray(positions_A, dtype=np.float64).reshape(-1, len(species), 3)
    ff = XtbForceField(species, method, x[0])
    out = [ff(xi, fresh=True) for xi in x]
    return np.array([e for e, _ in out]), np.stack([f for _, f in out])


def hutchinson_laplacians(
    species: np.ndarray,
    positions_A: np.ndarray,
    method: str,
    *,
    seed: int = 0,
    step_A: float = 5e-3,
) -> np.ndarray:
    """Unbiased per-frame estimates of the laplacian of U (sum of d2U/dx2), from forces only.

    xTB gives no second derivatives. For a random z with independent +-1 entries,
    E[z^T H z] = tr H (Hutchinson 1989), and z^T H z = z . (F(x - h z) - F(x + h z)) / (2h)
    + O(h^2) by central differences of the forces: two force calls per frame. Each estimate is
    noisy, but the mean over frames (what the configurational temperature needs) is unbiased,
    and a bootstrap over frames includes that noise in the error bar.

    Args:
        species: (N,) atomic numbers.
        positions_A: (F, N, 3) Å.
        method: xTB method of the surface.
        seed: seed of the random directions.
        step_A: finite-difference step h, Å.

    Returns:
        (F,) kcal/mol/Å^2.
    """
    x = np.asarray(positions_A, dtype=np.float64)
    rng = np.random.default_rng(seed)
    ff = XtbForceField(species, method, x[0])
    out = np.empty(len(x))
    for k, xk in enumerate(x):
        z = rng.choice(np.array([-1.0, 1.0]), size=xk.shape)
        _, f_minus = ff(xk - step_A * z)
        _, f_plus = ff(xk + step_A * z)
        out[k] = float(np.sum(z * (f_minus - f_plus))) / (2.0 * step_A)
    return out
