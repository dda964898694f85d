"""Instruments that tell repair from softening (issue 13).

Curvature at the minimum, soft-mode force slopes, the energy of collapsed geometries.

A distribution term at temperature T can lower a distribution gap in two ways. Repair raises the
energy of spurious minima (collapsed geometries) and leaves the surface near the physical minimum
alone. Softening lowers the curvature of the soft modes (torsions) so that the model at T mimics
a hotter reference: a harmonic mode of stiffness k sampled at T has variance kT/k, so a model that
reproduces a reference at T_ref while sampled at T_model has k_model / k_ref = T_model / T_ref.

Every function here is model-agnostic: a model is an energy callable ``positions (B, N, 3) Å ->
energies (B,) kcal/mol`` (:data:`crmse_cli.model.forces.EnergyFn`), differentiable with respect
to the positions; forces and Hessians come from :mod:`crmse_cli.model.forces`.

Conventions (documented choices):

- Modes are the eigenvectors of the Hessian restricted to the 3N - 6 internal directions (the
  orthogonal complement of the 3 translations and 3 rotations about the centroid). By default
  in plain Cartesian coordinates, eigenvalues in kcal/mol/Å^2; with ``masses`` in mass-weighted
  coordinates q = sqrt(m) x, eigenvalues in kcal/mol/Å^2/amu (omega^2, so frequencies).
- The per-mode ratio is the curvature of the other model along the reference model's (MSE's)
  eigenvector divided by the reference eigenvalue (a Rayleigh quotient), which stays defined when
  modes of similar stiffness swap order; the ratio of the sorted eigenvalues is kept too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize

from crmse_cli.errors import CrmseError, DataError
from crmse_cli.model.forces import forces_from_energy, hessian
from crmse_cli.units import KB_KCAL_PER_MOL_K

log = logging.getLogger(__name__)

EnergyFn = Callable[[torch.Tensor], torch.Tensor]


# -- geometry ----------------------------------------------------------------------------------
def kabsch(mobile: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation(s) R with (mobile - centroid) @ R.T closest to (target - centroid) (Kabsch 1976).

    Args:
        mobile: (N, 3) or (F, N, 3) Å.
        target: (N, 3) Å.

    Returns:
        (3, 3) or (F, 3, 3) proper rotations (det +1).
    """
    m = np.asarray(mobile, dtype=np.float64)
    single = m.ndim == 2
    m = m[None] if single else m
    t = np.asarray(target, dtype=np.float64)
    a = m - m.mean(axis=1, keepdims=True)
    b = t - t.mean(axis=0)
    cov = np.einsum("fni,nj->fij", a, b)  # (F, 3, 3)
    u, _, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(np.einsum("fij,fjk->fik", u, vt)))
    fix = np.ones((len(m), 3))
    fix[:, 2] = d
    rot: np.ndarray = np.einsum("fji,fj,fkj->fik", vt, fix, u)  # V diag(1,1,d) U^T
    return rot[0] if single else rot


def align(positions: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Positions (N, 3) moved onto ``target`` (N, 3) by the best rotation and translation, Å."""
    x = np.asarray(positions, dtype=np.float64)
    rot = kabsch(x, target)
    out: np.ndarray = (x - x.mean(axis=0)) @ rot.T + np.asarray(target).mean(axis=0)
    return out


def internal_basis(positions: np.ndarray, masses: np.ndarray | None = None) -> np.ndarray:
    """(3N, 3N - 6) orthonormal basis of the internal directions (rigid-body motions projected out).

    Args:
        positions: (N, 3) Å, a non-linear molecule.
        masses: (N,) amu for mass-weighted coordinates, or None for plain Cartesian ones.
    """
    x = np.asarray(positions, dtype=np.float64)
    n = x.shape[0]
    w = np.ones(n) if masses is None else np.sqrt(np.asarray(masses, dtype=np.float64))
    c = x - (x.mean(axis=0) if masses is None else np.average(x, axis=0, weights=w**2))
    rigid = np.zeros((3 * n, 6))
    for a in range(3):
        t = np.zeros((n, 3))
        t[:, a] = w
        rigid[:, a] = t.ravel()
        r = np.cross(np.eye(3)[a], c) * w[:, None]  # rotation about axis a
        rigid[:, 3 + a] = r.ravel()
    q, _ = np.linalg.qr(rigid)
    full, _ = np.linalg.qr(np.concatenate([q, np.eye(3 * n)], axis=1))
    basis: np.ndarray = full[:, 6 : 3 * n]
    return basis


@dataclass(frozen=True)
class Modes:
    """Internal modes at one geometry: ``eigenvalues`` (M,) ascending, ``vectors`` (3N, M) unit columns."""

    eigenvalues: np.ndarray
    vectors: np.ndarray
    mass_weighted: bool


def _weighted(h: np.ndarray, masses: np.ndarray | None) -> np.ndarray:
    if masses is None:
        return h
    s = 1.0 / np.sqrt(np.repeat(np.asarray(masses, dtype=np.float64), 3))
    return h * s[:, None] * s[None, :]


def normal_modes(h: np.ndarray, positions: np.ndarray, masses: np.ndarray | None = None) -> Modes:
    """Eigen-decomposition of a Hessian (3N, 3N) kcal/mol/Å^2 on the 3N - 6 internal directions."""
    b = internal_basis(positions, masses)
    vals, vecs = np.linalg.eigh(b.T @ _weighted(h, masses) @ b)
    return Modes(vals, b @ vecs, masses is not None)


def curvatures_along(h: np.ndarray, vectors: np.ndarray, masses: np.ndarray | None = None) -> np.ndarray:
    """(M,) Rayleigh quotients v^T H v of a Hessian along unit vectors (3N, M) (same weighting)."""
    hw = _weighted(h, masses)
    out: np.ndarray = np.einsum("im,ij,jm->m", vectors, hw, vectors)
    return out


# -- relaxation and Hessians -------------------------------------------------------------------
@dataclass(frozen=True)
class Minimum:
    """A relaxed geometry: ``positions`` (N, 3) Å, ``energy`` kcal/mol, ``max_force`` kcal/mol/Å."""

    positions: np.ndarray
    energy: float
    max_force: float
    n_evaluations: int


def energy_forces_np(energy_fn: EnergyFn, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energies (F,) kcal/mol and forces (F, N, 3) kcal/mol/Å of frames (F, N, 3), float64."""
    pos = torch.as_tensor(np.asarray(positions, dtype=np.float64)).requires_grad_(True)
    energy = energy_fn(pos)
    force = forces_from_energy(energy, pos, create_graph=False)
    return energy.detach().numpy().astype(np.float64), force.detach().numpy().astype(np.float64)


def relax(energy_fn: EnergyFn, start: np.ndarray, *, fmax: float = 1e-4, max_steps: int = 5000) -> Minimum:
    """Local minimum from ``start`` (N, 3) Å by L-BFGS (SciPy) on the model's energy and forces.

    Args:
        energy_fn: the model, float64.
        start: (N, 3) Å.
        fmax: stop when the largest force component is below this, kcal/mol/Å.
        max_steps: most L-BFGS iterations.
    """
    x0 = np.asarray(start, dtype=np.float64)
    count = [0]

    def fun(flat: np.ndarray) -> tuple[float, np.ndarray]:
        count[0] += 1
        e, f = energy_forces_np(energy_fn, flat.reshape(1, *x0.shape))
        return float(e[0]), -f.ravel()

    res = minimize(
        fun, x0.ravel(), jac=True, method="L-BFGS-B",
        options={"maxiter": max_steps, "gtol": fmax, "ftol": 0.0, "maxcor": 30},
    )  # fmt: skip
    x = res.x.reshape(x0.shape)
    e, f = energy_forces_np(energy_fn, x[None])
    if not np.isfinite(e).all():
        raise CrmseError("relaxation reached a non-finite energy; the model is unusable at this geometry")
    return Minimum(x, float(e[0]), float(np.abs(f).max()), count[0])


def hessian_np(energy_fn: EnergyFn, positions: np.ndarray) -> np.ndarray:
    """(3N, 3N) Hessian kcal/mol/Å^2 at (N, 3) Å, by autograd of the forces in float64."""
    return hessian(energy_fn, torch.as_tensor(np.asarray(positions, dtype=np.float64))).numpy()


@dataclass(frozen=True)
class HessianComparison:
    """Curvature of a model (``run``) against a reference model (``ref``, the MSE model) at their minima.

    Attributes:
        ref_eigenvalues: (M,) the reference model's internal eigenvalues, ascending.
        run_eigenvalues: (M,) the other model's own eigenvalues, ascending.
        run_curvatures: (M,) the other model's curvature along each reference eigenvector.
        ratios: (M,) ``run_curvatures / ref_eigenvalues``: the per-mode ratio (1: unchanged).
        eigen_ratios: (M,) ``run_eigenvalues / ref_eigenvalues`` (sorted pairing).
        ref_vectors: (3N, M) the reference eigenvectors (for the force slopes).
        ref_minimum, run_minimum: the relaxed geometries (run's aligned onto ref's).
        minimum_rmsd_A: RMSD between the two minima after alignment, Å.
        unit: eigenvalue unit.
    """

    ref_eigenvalues: np.ndarray
    run_eigenvalues: np.ndarray
    run_curvatures: np.ndarray
    ratios: np.ndarray
    eigen_ratios: np.ndarray
    ref_vectors: np.ndarray
    ref_minimum: Minimum
    run_minimum: Minimum
    minimum_rmsd_A: float
    unit: str

    def soft_ratio(self, k: int) -> float:
        """Mean ratio over the ``k`` softest reference modes (the torsions)."""
        return float(np.mean(self.ratios[:k]))

    def stiff_ratio(self, k: int) -> float:
        """Mean ratio over the ``k`` stiffest reference modes (X-H stretches)."""
        return float(np.mean(self.ratios[-k:]))


def compare_hessians(
    run: EnergyFn,
    ref: EnergyFn,
    start: np.ndarray,
    *,
    masses: np.ndarray | None = None,
    fmax: float = 1e-4,
) -> HessianComparison:
    """Relax ``start`` under both models, take both Hessians and compare them mode by mode.

    Args:
        run: the model under test (e.g. CRMSE-regularized), float64 energy callable.
        ref: the reference model (the MSE model).
        start: (N, 3) Å, e.g. the lowest-energy reference frame.
        masses: (N,) amu for mass-weighted modes; None for plain Cartesian ones.
        fmax: relaxation threshold, kcal/mol/Å.
    """
    ref_min = relax(ref, start, fmax=fmax)
    run_min = relax(run, start, fmax=fmax)
    run_pos = align(run_min.positions, ref_min.positions)
    run_min = Minimum(run_pos, run_min.energy, run_min.max_force, run_min.n_evaluations)
    h_ref = hessian_np(ref, ref_min.positions)
    h_run = hessian_np(run, run_pos)
    modes_ref = normal_modes(h_ref, ref_min.positions, masses)
    modes_run = normal_modes(h_run, run_pos, masses)
    if modes_ref.eigenvalues[0] <= 0:  # a saddle or a flat direction: ratios of that mode mean little
        log.warning(
            "the reference model's Hessian has a non-positive eigenvalue (%.3g) at its relaxed geometry "
            "(max force %.2g): not a strict minimum",
            modes_ref.eigenvalues[0],
            ref_min.max_force,
        )
    curv = curvatures_along(h_run, modes_ref.vectors, masses)
    rmsd = float(np.sqrt(((run_pos - ref_min.positions) ** 2).sum(axis=1).mean()))
    return HessianComparison(
        ref_eigenvalues=modes_ref.eigenvalues,
        run_eigenvalues=modes_run.eigenvalues,
        run_curvatures=curv,
        ratios=curv / modes_ref.eigenvalues,
        eigen_ratios=modes_run.eigenvalues / modes_ref.eigenvalues,
        ref_vectors=modes_ref.vectors,
        ref_minimum=ref_min,
        run_minimum=run_min,
        minimum_rmsd_A=rmsd,
        unit="kcal/mol/A^2/amu" if masses is not None else "kcal/mol/A^2",
    )


# -- forces along soft modes -------------------------------------------------------------------
def mode_projections(
    positions: np.ndarray,
    forces: np.ndarray,
    reference: np.ndarray,
    vectors: np.ndarray,
    masses: np.ndarray | None = None,
) -> np.ndarray:
    """Forces of frames projected on mode vectors defined at ``reference``.

    Each frame is rotated onto ``reference`` (Kabsch, all atoms, unweighted), its forces rotated
    with it, then projected: plain ``F . v`` (kcal/mol/Å), or mass-weighted ``(F / sqrt(m)) . v``.

    Args:
        positions: (F, N, 3) Å.
        forces: (F, N, 3) kcal/mol/Å.
        reference: (N, 3) Å, the geometry the modes belong to.
        vectors: (3N, k) unit mode vectors.
        masses: (N,) amu when ``vectors`` are mass-weighted.

    Returns:
        (F, k) generalised forces along the modes.
    """
    x = np.asarray(positions, dtype=np.float64)
    f = np.asarray(forces, dtype=np.float64)
    if x.shape != f.shape or x.ndim != 3 or x.shape[1:] != np.asarray(reference).shape:
        raise DataError(f"mode projections need positions and forces (F, N, 3), got {x.shape}, {f.shape}")
    rot = kabsch(x, reference)  # (F, 3, 3)
    f_rot = np.einsum("fnj,fij->fni", f, rot)
    if masses is not None:
        f_rot = f_rot / np.sqrt(np.asarray(masses, dtype=np.float64))[None, :, None]
    out: np.ndarray = f_rot.reshape(len(f_rot), -1) @ vectors
    return out


def slope_through_origin(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Least-squares slope of y = s x without intercept, per column: sum(x y) / sum(x^2)."""
    xx = np.asarray(x, dtype=np.float64)
    yy = np.asarray(y, dtype=np.float64)
    out: np.ndarray = (xx * yy).sum(axis=0) / (xx * xx).sum(axis=0)
    return out


# -- collapsed geometries ------------------------------------------------------------------------
@dataclass(frozen=True)
class Lift:
    """Energies of collapsed frames above each model's own basin minimum, in units of kT.

    Attributes:
        run_kT, ref_kT: (F,) (E - E_min) / kT under the model under test and the reference model.
        lift_kT: (F,) ``run_kT - ref_kT``: how much the model under test raised each frame.
    """

    run_kT: np.ndarray
    ref_kT: np.ndarray
    lift_kT: np.ndarray

    @property
    def median_lift_kT(self) -> float:
        """Median collapse lift over the frames, in kT (NaN without frames)."""
        return float(np.median(self.lift_kT)) if self.lift_kT.size else float("nan")


def energy_lift(
    e_run: np.ndarray, e_run_min: float, e_ref: np.ndarray, e_ref_min: float, temperature_K: float
) -> Lift:
    """Energies (F,) kcal/mol of the same frames under two models, each relative to its minimum, in kT."""
    if temperature_K <= 0:
        raise CrmseError(f"temperature must be positive, got {temperature_K} K")
    kt = KB_KCAL_PER_MOL_K * temperature_K
    run = (np.asarray(e_run, dtype=np.float64) - e_run_min) / kt
    ref = (np.asarray(e_ref, dtype=np.float64) - e_ref_min) / kt
    return Lift(run, ref, run - ref)
