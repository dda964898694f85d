"""Training frames: reproducible subsampling, the validation hold-out and batching.

All frames of a training set are one molecule, so a batch is a (B, N, 3) block of positions
(the potential's dense, fastest layout) plus labels; frames live as tensors on the training
device and batches are index selections, with no per-step copying from numpy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from crmse_cli.data.dataset import Dataset
from crmse_cli.errors import CrmseError

if TYPE_CHECKING:
    from crmse_cli.model.potential import Potential


@dataclass(frozen=True, eq=False)
class FrameSet:
    """Frames of one molecule as tensors.

    Attributes:
        positions: (F, N, 3) Å, in the model's dtype.
        energies: (F,) kcal/mol, float64 (labels keep full precision).
        forces: (F, N, 3) kcal/mol/Å, in the model's dtype.
        species: (N,) int64 atomic numbers.
        rows: (F,) int64 row indices of the frames in their dataset.
    """

    positions: Tensor
    energies: Tensor
    forces: Tensor
    species: Tensor
    rows: np.ndarray

    def __len__(self) -> int:
        return int(self.energies.shape[0])

    @classmethod
    def from_dataset(
        cls,
        data: Dataset,
        rows: np.ndarray,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> FrameSet:
        """The frames ``rows`` of ``data`` on ``device``; positions and forces in ``dtype``."""
        rows = np.asarray(rows, dtype=np.int64)
        return cls(
            positions=torch.as_tensor(data.positions[rows], dtype=dtype, device=device),
            energies=torch.as_tensor(data.energies[rows], dtype=torch.float64, device=device),
            forces=torch.as_tensor(data.forces[rows], dtype=dtype, device=device),
            species=torch.as_tensor(data.species, dtype=torch.long, device=device),
            rows=rows,
        )

    def batch(self, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(positions (B,N,3), energies (B,), forces (B,N,3)) of the frames at ``index``."""
        index = index.to(self.positions.device)
        return self.positions[index], self.energies[index], self.forces[index]


def select_frames(
    train_rows: np.ndarray,
    n_train: int | None,
    n_val: int | None,
    seed: int,
    *,
    val_fraction: float | None = None,
    always: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw validation and training frames from a split's training part, disjoint.

    One permutation of ``train_rows`` by ``numpy.random.default_rng(seed)``: its first ``n_val``
    entries validate, the next ``n_train`` train. So a seed keeps its validation frames whatever
    ``n_train``, the same seed gives the same frames, and a smaller ``n_train`` trains on a
    subset of a larger one. With ``val_fraction`` (the rule before 2026-12-07, for old run
    configs) the first ``n_train`` entries are drawn and the first ``round(val_fraction *
    n_train)`` of those (at least 1) validate, as before.

    Args:
        train_rows: (T,) dataset rows of the split's training part.
        n_train: training frames (None: all T but the validation frames; with ``val_fraction``:
            training + validation frames).
        n_val: validation frames (ignored with ``val_fraction``).
        seed: seed of the draw.
        val_fraction: the old rule's validation share, in (0, 0.5]; None: ``n_val``.
        always: (A,) rows trained on whatever the draw (a split's ``added`` rows, not in
            ``train_rows``); they count in ``n_train``, and the draw from ``train_rows`` is the
            one of ``n_train - A`` without them: a model on 200 + A frames trains on the 200 of
            the same seed's 200-frame model plus the A.

    Returns:
        (training rows, validation rows), each sorted.

    Raises:
        CrmseError: when the training part is too small for the request (one line, both fixes).
    """
    rows = np.asarray(train_rows, dtype=np.int64)
    extra = np.zeros(0, dtype=np.int64) if always is None else np.asarray(always, dtype=np.int64)
    if len(extra):
        if n_train is not None and int(n_train) <= len(extra):
            raise CrmseError(
                f"n_train {n_train} must exceed the split's {len(extra)} added frames (it counts them)"
            )
        drawn, val = select_frames(
            rows,
            None if n_train is None else int(n_train) - len(extra),
            n_val,
            seed,
            val_fraction=val_fraction,
        )
        return np.union1d(drawn, extra), val
    order = np.random.default_rng(seed).permutation(rows)
    if val_fraction is not None:
        return _select_by_fraction(order, n_train, val_fraction)
    if n_val is None or int(n_val) < 1:
        raise CrmseError(f"n_val must be >= 1 (validation frames), got {n_val}")
    v = int(n_val)
    if v >= len(rows):
        raise CrmseError(
            f"n_val {v} leaves no training frames of the split's {len(rows)}; lower n_val (--n-val)"
        )
    t = len(rows) - v if n_train is None else int(n_train)
    if t < 1 or v + t > len(rows):
        raise CrmseError(
            f"n_train {t} + n_val {v} = {t + v} frames, but the split's training part holds "
            f"{len(rows)}; lower n_train (at most {len(rows) - v} beside {v} validation frames) "
            "or n_val (--n-val)"
        )
    return np.sort(order[v : v + t]), np.sort(order[:v])


def _select_by_fraction(
    order: np.ndarray, n_train: int | None, val_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """The rule before 2026-12-07: ``n_train`` frames, a ``val_fraction`` of them validating."""
    n = len(order) if n_train is None else int(n_train)
    if n < 2 or n > len(order):
        raise CrmseError(f"n_train must lie in 2..{len(order)} (the split's training frames), got {n_train}")
    if not 0.0 < val_fraction <= 0.5:
        raise CrmseError(f"val_fraction must lie in (0, 0.5], got {val_fraction}")
    chosen = order[:n]
    n_val = max(1, int(round(val_fraction * n)))
    return np.sort(chosen[n_val:]), np.sort(chosen[:n_val])


def rows_digest(rows: np.ndarray) -> str:
    """sha256 (16 hex digits) of dataset rows, sorted, as little-endian int64: names a frame set."""
    blob = np.sort(np.asarray(rows, dtype="<i8")).tobytes()
    return hashlib.sha256(blob).hexdigest()[:16]


def shuffled_batches(n_frames: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Index batches of one epoch in an order drawn from ``generator`` (CPU, advanced in place).

    The last batch may be smaller; it is kept so that every frame is seen every epoch.
    """
    order = torch.randperm(n_frames, generator=generator)
    yield from torch.split(order, batch_size)


def ordered_batches(n_frames: int, batch_size: int) -> Iterator[Tensor]:
    """Index batches 0..n_frames-1 in order (evaluation)."""
    yield from torch.split(torch.arange(n_frames), batch_size)


def check_device(device: str) -> None:
    """Refuse devices torch cannot use, with the fix."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CrmseError("device cuda was asked for but torch sees no CUDA GPU; use device cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise CrmseError(f"device must be cpu or cuda[:n], got {device!r}")


def center_energies(potential: Potential, frames: FrameSet) -> None:
    """Shift the per-element energies so the initial network's mean training residual is zero.

    An untrained network already sums to an offset of up to ~100 kcal/mol (its outputs times the
    force-RMS scale); refitting the shift on E - U(x) removes it, so the first epochs are spent
    on the energy surface's shape, not on a constant. Same least squares as
    ``Potential.fit_shift_scale`` (minimum-norm for a single molecule).
    """
    residual = []
    for index in torch.split(torch.arange(len(frames)), 256):
        pos, energies, _ = frames.batch(index)
        with torch.no_grad():
            pred = potential.energies(pos, frames.species)
        residual.append((energies - pred.double()).cpu())
    r = torch.cat(residual).numpy()
    species = frames.species.cpu().numpy()
    counts = np.array([[np.sum(species == z) for z in potential.species]], dtype=np.float64)
    delta, *_ = np.linalg.lstsq(np.repeat(counts, len(r), axis=0), r, rcond=1e-10)
    # Through the potential: a wrapped module (MACE) moves its own reference energies instead.
    potential.add_reference_energies(torch.as_tensor(delta))
