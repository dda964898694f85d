"""Scalar statistics: energy KS, stability summary, configurational temperature and its error bar."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import ks_2samp

from crmse_cli.errors import DataError
from crmse_cli.units import KB_KCAL_PER_MOL_K

log = logging.getLogger(__name__)


def energy_ks(e_sample: np.ndarray, e_ref: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (sup |CDF_a - CDF_b|) between two energy sets.

    Args:
        e_sample: (F_a,) kcal/mol, e.g. model energies of sampled frames.
        e_ref: (F_b,) kcal/mol, e.g. DFT energies of reference frames.

    Returns:
        Dimensionless value in [0, 1] (``scipy.stats.ks_2samp(...).statistic``).
    """
    a = np.asarray(e_sample, dtype=np.float64).ravel()
    b = np.asarray(e_ref, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise DataError("energy_ks needs two non-empty sets of finite energies")
    return float(ks_2samp(a, b).statistic)


@dataclass(frozen=True)
class StabilityStats:
    """Stability of B replicas from their leave times.

    Attributes:
        n_replicas: B.
        n_left: replicas that left the physical basin.
        fraction_stable: share of replicas that never left, in [0, 1].
        median_time_to_leave: ``np.median`` of the leave times of ALL replicas, the survivors
            counted as +inf (right-censored at the end of the run). It is +inf when at least half
            the replicas survived (for an even B, when exactly half did): the median survival
            time was not reached, and a finite median over only the replicas that left would
            flatter unstable models.
        median_time_among_left: median over the replicas that left (NaN if none); biased low,
            for diagnosis only.
        unit: unit of the times (``fs`` for Langevin, ``steps`` for ULA).
    """

    n_replicas: int
    n_left: int
    fraction_stable: float
    median_time_to_leave: float
    median_time_among_left: float
    unit: str

    def to_metrics(self) -> dict[str, tuple[float, str]]:
        """Metric rows ``name -> (value, unit)``."""
        d = asdict(self)
        return {
            "stability_fraction_stable": (d["fraction_stable"], "1"),
            "stability_median_time_to_leave": (d["median_time_to_leave"], self.unit),
            "stability_median_time_among_left": (d["median_time_among_left"], self.unit),
            "stability_n_left": (float(self.n_left), "1"),
            "stability_n_replicas": (float(self.n_replicas), "1"),
        }


def stability_summary(leave_times: np.ndarray, unit: str = "fs") -> StabilityStats:
    """Summarise per-replica leave times; replicas that never left carry +inf (or NaN).

    NaN is read as "never left", as the stability monitor writes it; when the sampler has no
    physical time (ULA), pass leave steps instead, with +inf for the survivors.

    Args:
        leave_times: (B,) time of the first observed state outside the basin, in ``unit``.
        unit: unit string recorded with the times.
    """
    t = np.asarray(leave_times, dtype=np.float64).ravel()
    if t.size == 0:
        raise DataError("stability_summary needs the leave times of at least one replica")
    t = np.where(np.isfinite(t), t, np.inf)
    left = np.isfinite(t)
    return StabilityStats(
        n_replicas=int(t.size),
        n_left=int(left.sum()),
        fraction_stable=float(1.0 - left.mean()),
        median_time_to_leave=float(np.median(t)),
        median_time_among_left=float(np.median(t[left])) if left.any() else float("nan"),
        unit=unit,
    )


def _tconf_terms(forces: np.ndarray, laplacians: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(forces, dtype=np.float64)
    lap = np.asarray(laplacians, dtype=np.float64).ravel()
    if f.ndim != 3 or f.shape[-1] != 3 or f.shape[0] != lap.shape[0] or lap.size == 0:
        raise DataError(f"T_conf needs forces (F, N, 3) and laplacians (F,), got {f.shape} and {lap.shape}")
    if not (np.all(np.isfinite(f)) and np.all(np.isfinite(lap))):
        raise DataError("T_conf needs finite forces and laplacians; drop the non-finite frames first")
    return np.sum(f * f, axis=(1, 2)), lap


def configurational_temperature(forces: np.ndarray, laplacians: np.ndarray) -> float:
    """T_conf = <|grad U|^2> / (k_B <laplacian U>) of a frame set (Rugh 1997; Butler et al. 1998).

    For frames drawn from exp(-U/kT) this equals T, whatever U is. Both averages run over the same
    frames (a ratio of means, not a mean of ratios: the per-frame ratio has no finite mean).

    For the DFT reference, pass the DFT forces and the MODEL's laplacians: DFT gives no second
    derivatives, and the laplacian (a sum of local curvatures) is what a good model reproduces
    best, while |F|^2 carries the frames' thermal spread. A reference T_conf well above the
    sampling temperature then says the reference frames are hotter than assumed (METHOD.md).

    Args:
        forces: (F, N, 3) kcal/mol/Å, -grad U per frame.
        laplacians: (F,) kcal/mol/Å^2, sum of d2U/dx2 over all 3N coordinates
            (``crmse_cli.model.forces.laplacian``).

    Returns:
        K; NaN (with a warning) when the mean laplacian is not positive.
    """
    g2, lap = _tconf_terms(forces, laplacians)
    mean_lap = float(lap.mean())
    if mean_lap <= 0:
        log.warning("mean laplacian %.3g <= 0: configurational temperature undefined", mean_lap)
        return float("nan")
    return float(g2.mean() / (KB_KCAL_PER_MOL_K * mean_lap))


def block_bootstrap_means(
    columns: np.ndarray, block_size: int = 1, n_boot: int = 1000, seed: int = 0
) -> np.ndarray:
    """Bootstrap replicates of column means, resampling contiguous blocks of frames.

    Frames of a trajectory are correlated; resampling blocks longer than the correlation time
    keeps that correlation inside each block, so the spread of the replicates is an honest error
    bar (``block_size=1`` is the plain bootstrap, right for independent frames). A tail shorter
    than one block is dropped.

    Args:
        columns: (F, k) per-frame values.
        block_size: frames per block.
        n_boot: number of replicates.
        seed: seed of the resampling generator.

    Returns:
        (n_boot, k) means of each resampled set.
    """
    c = np.asarray(columns, dtype=np.float64)
    c = c.reshape(c.shape[0], -1)
    n_blocks = c.shape[0] // max(block_size, 1)
    if block_size < 1 or n_boot < 1 or n_blocks < 2:
        raise DataError(
            f"block bootstrap needs block_size >= 1, n_boot >= 1 and >= 2 blocks ({n_blocks} here)"
        )
    block_means = c[: n_blocks * block_size].reshape(n_blocks, block_size, -1).mean(axis=1)  # (n_blocks, k)
    pick = np.random.default_rng(seed).integers(0, n_blocks, size=(n_boot, n_blocks))
    out: np.ndarray = block_means[pick].mean(axis=1)
    return out


def configurational_temperature_error(
    forces: np.ndarray, laplacians: np.ndarray, block_size: int = 1, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """T_conf and its (block) bootstrap standard error.

    Args:
        forces: (F, N, 3) kcal/mol/Å.
        laplacians: (F,) kcal/mol/Å^2.
        block_size: frames per bootstrap block; use about the correlation time of the series.
        n_boot: bootstrap replicates.
        seed: seed of the resampling.

    Returns:
        ``(T_conf, standard error)`` in K.
    """
    if n_boot < 2:
        raise DataError("configurational_temperature_error needs n_boot >= 2")
    g2, lap = _tconf_terms(forces, laplacians)
    reps = block_bootstrap_means(np.stack([g2, lap], axis=1), block_size, n_boot, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_boot = reps[:, 0] / (KB_KCAL_PER_MOL_K * reps[:, 1])
    return configurational_temperature(forces, laplacians), float(np.std(t_boot, ddof=1))


def virial_terms(positions: np.ndarray, forces: np.ndarray) -> np.ndarray:
    """(F,) kcal/mol: -sum_i (x_i - centroid) . F_i of each frame (the dilation derivative of U)."""
    x = np.asarray(positions, dtype=np.float64)
    f = np.asarray(forces, dtype=np.float64)
    if x.ndim != 3 or x.shape != f.shape or x.shape[-1] != 3 or x.shape[1] < 2:
        raise DataError(
            f"virial temperature needs positions and forces (F, N>=2, 3), got {x.shape}, {f.shape}"
        )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(f))):
        raise DataError("virial temperature needs finite positions and forces")
    out: np.ndarray = -np.sum((x - x.mean(axis=1, keepdims=True)) * f, axis=(1, 2))
    return out


def virial_temperature(positions: np.ndarray, forces: np.ndarray) -> float:
    """Model-free temperature from generalised equipartition: <x . grad U> / (3 (N - 1) k_B).

    For a translation-invariant U and frames drawn from exp(-U/kT), integrating by parts over
    the 3(N - 1) relative coordinates gives <sum_i x_i . grad_i U> = 3 (N - 1) kT (the centroid
    drops out because the forces sum to zero). It needs only positions and forces, no laplacian,
    but it is very sensitive to a mean force: frames sampled on one potential and labelled with
    another whose bond lengths differ by 0.01 Å shift it by hundreds of K. It is therefore a test
    of whether the frames are a Boltzmann sample OF THE LABELLING POTENTIAL, a useful companion
    to :func:`configurational_temperature`.

    Args:
        positions: (F, N, 3) Å.
        forces: (F, N, 3) kcal/mol/Å, -grad U of the same frames.

    Returns:
        K (negative when the labelling potential pulls the frames outward on average).
    """
    v = virial_terms(positions, forces)
    n_atoms = np.asarray(positions).shape[1]
    return float(v.mean() / (3 * (n_atoms - 1) * KB_KCAL_PER_MOL_K))


def virial_temperature_error(
    positions: np.ndarray, forces: np.ndarray, block_size: int = 1, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Virial temperature and its (block) bootstrap standard error.

    Args:
        positions: (F, N, 3) Å, frames in the order their correlation runs (time, or replica by
            replica), so that contiguous blocks hold correlated frames.
        forces: (F, N, 3) kcal/mol/Å of the same frames.
        block_size: frames per bootstrap block (1: independent frames).
        n_boot: bootstrap replicates (>= 2).
        seed: seed of the resampling.

    Returns:
        ``(T_vir, standard error)`` in K (see :func:`virial_temperature`).
    """
    if n_boot < 2:
        raise DataError("virial_temperature_error needs n_boot >= 2")
    v = virial_terms(positions, forces)
    scale = 3 * (np.asarray(positions).shape[1] - 1) * KB_KCAL_PER_MOL_K
    reps = block_bootstrap_means(v[:, None], block_size, n_boot, seed)[:, 0] / scale
    return float(v.mean() / scale), float(np.std(reps, ddof=1))


def energy_spread_temperature(energies: np.ndarray, n_modes: int) -> float:
    """Harmonic estimator of T from the spread of potential energies: var(U) = n_modes (kT)^2 / 2.

    Exact for a harmonic potential with ``n_modes`` vibrational modes (each contributes kT/2 to
    <U> and (kT)^2/2 to var U); for a real molecule anharmonic bonds raise and hindered rotors
    lower the spread, so read it as a cross-check of the other two estimators, good to a few
    per cent, not as an exact identity.

    Args:
        energies: (F,) kcal/mol, potential energies of the frames.
        n_modes: vibrational degrees of freedom, 3N - 6 for a non-linear molecule.

    Returns:
        K.
    """
    u = np.asarray(energies, dtype=np.float64).ravel()
    if u.size < 2 or n_modes < 1 or not np.all(np.isfinite(u)):
        raise DataError("the energy-spread temperature needs >= 2 finite energies and n_modes >= 1")
    return float(np.sqrt(2.0 * u.var() / n_modes) / KB_KCAL_PER_MOL_K)


def energy_spread_temperature_error(
    energies: np.ndarray, n_modes: int, block_size: int = 1, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """:func:`energy_spread_temperature` and its (block) bootstrap standard error, both in K."""
    u = np.asarray(energies, dtype=np.float64).ravel()
    value = energy_spread_temperature(u, n_modes)
    c = u - u.mean()  # centred: the variance from (mean u, mean u^2) loses no digits
    reps = block_bootstrap_means(np.stack([c, c * c], axis=1), block_size, n_boot, seed)
    var = np.maximum(reps[:, 1] - reps[:, 0] ** 2, 0.0)
    return value, float(np.std(np.sqrt(2.0 * var / n_modes) / KB_KCAL_PER_MOL_K, ddof=1))


@dataclass(frozen=True)
class TemperatureEstimate:
    """One temperature estimator applied to a frame set.

    Attributes:
        name: ``virial``, ``configurational`` or ``energy_spread``.
        value_K: the estimate, K.
        error_K: its block-bootstrap standard error, K.
        set_K: the temperature the frames are declared to be at, K.
        z: how many standard errors the estimate may miss ``set_K`` by and still pass.
    """

    name: str
    value_K: float
    error_K: float
    set_K: float
    z: float

    @property
    def deviation_sigma(self) -> float:
        """(value - set) / error; inf when the error is zero and the value misses."""
        diff = self.value_K - self.set_K
        if self.error_K > 0:
            return float(diff / self.error_K)
        return 0.0 if diff == 0 else float(np.sign(diff) * np.inf)

    @property
    def passed(self) -> bool:
        """True when the estimate is finite and within ``z`` standard errors of its target."""
        return bool(np.isfinite(self.value_K) and abs(self.deviation_sigma) <= self.z)


@dataclass(frozen=True)
class EnsembleCheck:
    """Do the frames read their declared temperature? (see :func:`ensemble_check`)."""

    temperature_K: float
    estimates: tuple[TemperatureEstimate, ...]
    block_size: int

    @property
    def passed(self) -> bool:
        """True when every estimate passed."""
        return all(e.passed for e in self.estimates)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary (registry meta)."""
        return {
            "temperature_K": self.temperature_K,
            "block_size": self.block_size,
            "passed": self.passed,
            **{
                e.name: {"value_K": e.value_K, "error_K": e.error_K, "passed": e.passed, "z": e.z}
                for e in self.estimates
            },
        }


def ensemble_check(
    positions: np.ndarray,
    forces: np.ndarray,
    energies: np.ndarray,
    temperature_K: float,
    *,
    tconf: tuple[np.ndarray, np.ndarray] | None = None,
    n_modes: int | None = None,
    n_blocks: int = 20,
    z: float = 3.0,
    n_boot: int = 1000,
    seed: int = 0,
) -> EnsembleCheck:
    """The virial, configurational and energy-spread temperatures of a frame set, with error bars.

    For frames drawn from exp(-U/kT) and labelled with that U, the virial temperature and T_conf
    equal T exactly and the (harmonic) energy-spread temperature nearly; a set generated hotter
    than declared, or labelled on another surface, misses. Error bars come from a block
    bootstrap with ``n_blocks`` contiguous blocks, so frame-to-frame correlation along a
    trajectory is accounted for when a block is longer than the correlation time.

    Args:
        positions: (F, N, 3) Å.
        forces: (F, N, 3) kcal/mol/Å, -grad U of the frames.
        energies: (F,) kcal/mol.
        temperature_K: the declared temperature, K.
        tconf: optional ``(forces (F', N, 3), laplacians (F',))`` of a subset of frames for T_conf
            (laplacians in kcal/mol/Å^2, e.g. from finite differences); skipped when None.
        n_modes: vibrational modes for the energy spread (default 3N - 6).
        n_blocks: bootstrap blocks (each of F // n_blocks frames).
        z: an estimate passes when it lies within z standard errors of ``temperature_K``.
        n_boot: bootstrap replicates.
        seed: seed of the resampling.
    """
    x = np.asarray(positions, dtype=np.float64)
    n_frames, n_atoms = x.shape[0], x.shape[1]
    block = max(1, n_frames // max(n_blocks, 2))
    est = []
    t, err = virial_temperature_error(x, forces, block, n_boot, seed)
    est.append(TemperatureEstimate("virial", t, err, temperature_K, z))
    if tconf is not None:
        f_sub, lap = tconf
        b = max(1, len(lap) // max(n_blocks, 2))
        t, err = configurational_temperature_error(f_sub, lap, b, n_boot, seed)
        est.append(TemperatureEstimate("configurational", t, err, temperature_K, z))
    modes = 3 * n_atoms - 6 if n_modes is None else n_modes
    t, err = energy_spread_temperature_error(energies, modes, block, n_boot, seed)
    est.append(TemperatureEstimate("energy_spread", t, err, temperature_K, z))
    return EnsembleCheck(temperature_K, tuple(est), block)
