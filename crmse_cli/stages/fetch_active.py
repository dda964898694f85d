"""`crmse fetch active`: the active-learning baseline at an equal label budget.

K frames are picked from a sample run of a model (:func:`pick_frames`: where its MD went wrong,
then spread over the replicas that stayed), labelled with the exact labeller of the model's
dataset (its GFN-xTB method, through :class:`crmse_cli.data.xtb.XtbForceField`, the labeller of
``crmse fetch xtb``: same units, each frame from tblite's default SCF guess) and registered as a
new dataset: the old frames, then the K new ones as rows appended to the training part of the
sample's split and recorded as its ``added`` part. A pretrain always trains on the ``added`` rows
and draws the rest exactly as on the old dataset (:func:`crmse_cli.train.data.select_frames`), so
``pretrain --n-train 200+K --seed S`` on the new dataset trains on the 200 frames of the seed-S
200-frame parent plus the K, validates on the parent's frames and tests on the same test part.
The reference frames (rows in neither part) are the old ones. Only the sample's split is kept:
in another split the new frames would count as reference frames.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from crmse_cli import names
from crmse_cli.config import JsonDict
from crmse_cli.data.dataset import ADDED, Dataset, normalize_split
from crmse_cli.data.xtb import XtbForceField, require_tblite, tblite_version
from crmse_cli.data.xtb_config import check_method
from crmse_cli.errors import CrmseError, NotFoundError
from crmse_cli.progress import make_progress
from crmse_cli.registry.store import Registry
from crmse_cli.sampling.trajectory import Trajectory, load_trajectory
from crmse_cli.stages._models import load_dataset, verify_artifact
from crmse_cli.stages.fetch import _NAME_RE, FetchResult, _result, _save_and_register
from crmse_cli.workspace import Workspace

log = logging.getLogger(__name__)

IDENTITY = ("from_sample_run", "frames", "seed", "window_steps", "per_left", "burn_in_steps", "from_dataset")
"""The ``active`` meta fields that make two calls the same dataset."""


@dataclass(frozen=True)
class Picks:
    """Frames picked from a trajectory artifact, K of them.

    Attributes:
        replica: (K,) int64 replica index.
        frame: (K,) int64 recorded-frame index into the artifact's ``positions``.
        step: (K,) int64 MD step of the frame.
        near_leaving: (K,) bool, the frame lies in the stretch before its replica left the basin.
    """

    replica: np.ndarray
    frame: np.ndarray
    step: np.ndarray
    near_leaving: np.ndarray


def pick_frames(
    traj: Trajectory,
    k: int,
    *,
    seed: int = 0,
    window_steps: int = 200,
    per_left: int = 1,
    burn_in_steps: int = 1000,
) -> Picks:
    """Pick ``k`` recorded frames where a model's MD went: near leaving first, then spread.

    Every frame gets a tier; the picks are the first ``k`` in (tier, spread, random) order:

    - tiers ``0 .. per_left - 1``: the last ``per_left`` usable recorded frames at or before the
      step a replica that left was first seen outside the basin (tier r: r frames before that one;
      a frame that blew up to non-finite positions passes its turn to the one before);
    - tier ``per_left``: frames of the replicas that stayed, after ``burn_in_steps`` (the replicas
      start at test frames), spread evenly over those replicas (each one's r-th pick comes before
      any replica's (r+1)-th), at random times;
    - then the other frames within ``window_steps`` before leaving, latest first.

    Frames after leaving, frames with non-finite positions and frames of step 0 are never picked.
    The random keys come from ``numpy.random.default_rng(seed)``: the same seed, the same picks.

    Args:
        traj: a sample run's artifact with its stability records.
        k: frames to pick, >= 1.
        seed: seed of the random order within a tier.
        window_steps: MD steps before leaving that count as "where the MD went wrong".
        per_left: frames from each replica that left before any of the others.
        burn_in_steps: replicas that stayed are not picked before this step.

    Raises:
        CrmseError: no stability records, or fewer candidate frames than ``k``.
    """
    if k < 1 or per_left < 1 or window_steps < 0 or burn_in_steps < 0:
        raise CrmseError("--frames and --per-left must be >= 1, --window-steps and --burn-in-steps >= 0")
    if "stability_left" not in traj.stability or "stability_first_step" not in traj.stability:
        raise CrmseError("the sample run's artifact has no stability records (sample it with a monitor)")
    steps = np.asarray(traj.steps, dtype=np.int64)  # (T,)
    left = np.asarray(traj.stability["stability_left"], dtype=bool).reshape(-1)  # (B,)
    first = np.asarray(traj.stability["stability_first_step"], dtype=np.int64).reshape(-1)  # (B,)
    n_t = traj.positions.shape[0]
    usable = (steps[:, None] > 0) & np.isfinite(traj.positions).all(axis=(2, 3))  # (T, B)
    last = np.searchsorted(steps, first, side="right") - 1  # (B,) last recorded frame at/before leaving
    before = (np.arange(n_t)[:, None] <= last[None, :]) & (steps[:, None] >= first[None, :] - window_steps)
    window = left[None, :] & before & usable
    # rank: usable window frames after this one (0 = the last usable frame before leaving).
    rank = np.flip(np.cumsum(np.flip(window, 0), 0), 0) - window
    stayed = ~left[None, :] & (steps[:, None] >= burn_in_steps) & usable
    tier = np.where(window, np.where(rank < per_left, rank, rank + 1), -1)
    tier = np.where(stayed, per_left, tier)
    ok = tier >= 0
    t_idx, b_idx = np.nonzero(ok)
    if len(t_idx) < k:
        raise CrmseError(f"the sample run has {len(t_idx)} frames to pick from, fewer than --frames {k}")
    key = np.random.default_rng(seed).random(len(t_idx))
    # Spread: a frame's rank among its replica's candidates in random order (0 for the others).
    by_replica = np.lexsort((key, b_idx))
    starts = np.searchsorted(b_idx[by_replica], b_idx[by_replica], side="left")
    spread = np.empty(len(t_idx), dtype=np.int64)
    spread[by_replica] = np.arange(len(t_idx)) - starts
    tiers = tier[t_idx, b_idx]
    spread = np.where(tiers == per_left, spread, 0)
    chosen = np.lexsort((key, spread, tiers))[:k]
    chosen = chosen[np.lexsort((t_idx[chosen], b_idx[chosen]))]  # replica by replica, in time
    return Picks(
        replica=b_idx[chosen].astype(np.int64),
        frame=t_idx[chosen].astype(np.int64),
        step=steps[t_idx[chosen]],
        near_leaving=left[b_idx[chosen]],
    )


def label_frames(species: np.ndarray, positions_A: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """XTB energies (F,) kcal/mol and forces (F, N, 3) kcal/mol/Å of ``positions_A`` (F, N, 3) Å.

    Each frame from tblite's default SCF guess (``fresh=True``), as ``crmse fetch xtb`` labels its
    kept frames, under a progress bar.
    """
    x = np.asarray(positions_A, dtype=np.float64)
    ff = XtbForceField(species, method, x[0])
    energies = np.empty(len(x))
    forces = np.empty_like(x)
    with make_progress() as bar:
        task = bar.add_task(f"label with {check_method(method)}", total=len(x), info="")
        for i, xi in enumerate(x):
            energies[i], forces[i] = ff(xi, fresh=True)
            bar.advance(task)
    return energies, forces


@dataclass(frozen=True)
class ActiveFetchResult:
    """A registered active-learning dataset.

    Attributes:
        fetch: the registered dataset (as ``crmse fetch rmd17`` reports it).
        added: frames added by this dataset (K).
        near_leaving: of those, frames from the stretch before a replica left.
        label_s: wall seconds of the labelling (0 when nothing was done).
    """

    fetch: FetchResult
    added: int
    near_leaving: int
    label_s: float


def fetch_active(
    ws: Workspace,
    sample: str,
    *,
    frames: int,
    name: str,
    seed: int = 0,
    window_steps: int = 200,
    per_left: int = 1,
    burn_in_steps: int = 1000,
    force: bool = False,
) -> ActiveFetchResult:
    """Register the model's dataset extended by ``frames`` frames picked from sample run ``sample``.

    Args:
        ws: the workspace.
        sample: a sample run (id or name).
        frames: K, frames to pick and label.
        name: the new dataset's name.
        seed: seed of the picks (:func:`pick_frames`).
        window_steps: MD steps before leaving that count (:func:`pick_frames`).
        per_left: frames from each replica that left, first (:func:`pick_frames`).
        burn_in_steps: replicas that stayed are picked after this step (:func:`pick_frames`).
        force: replace a dataset of the same name made otherwise.

    Returns:
        What was registered; the same call again returns it as it is (``fetch.already``).
    """
    if not _NAME_RE.match(name):
        raise CrmseError(f"--name {name!r} is not a valid dataset name; use letters, digits, '_', '.', '-'")
    reg = Registry.open(ws.ensure())
    try:
        run = reg.get_run(sample)
        if run.kind != "sample":
            raise CrmseError(f"--from-sample {sample}: run {run.id} is a {run.kind} run, not a sample run")
        arts = reg.artifacts(run.id, kind=names.ARTIFACT_SAMPLES)
        if not arts:
            raise NotFoundError(f"sample run {run.id} has no samples ({run.status}); sample again")
        source = str(run.config.get("dataset") or run.dataset)
        split = normalize_split(str(run.config.get("split", "01")))
        src_info = reg.find_dataset(source)
        method = None if src_info is None else src_info.meta.get("label_method")
        if src_info is None or not isinstance(method, str):
            raise CrmseError(
                f"dataset {source!r} of sample run {run.id} has no xTB labeller; active learning "
                "labels with the reference's own method: use a dataset made by `crmse fetch xtb`"
            )
        require_tblite()
        active: JsonDict = {
            "from_sample_run": run.id, "from_sample_name": run.name, "from_dataset": source,
            "split": split, "frames": frames, "seed": seed, "window_steps": window_steps,
            "per_left": per_left, "burn_in_steps": burn_in_steps,
        }  # fmt: skip
        have = reg.find_dataset(name)
        if have is not None and not force:
            old = have.meta.get("active")
            if (
                isinstance(old, dict)
                and all(old.get(f) == active[f] for f in IDENTITY)
                and Path(have.path).is_file()
            ):
                return ActiveFetchResult(
                    _result(have, already=True), int(frames), int(old["near_leaving"]), 0.0
                )
            raise CrmseError(f"dataset {name!r} is registered already; pick another --name or pass --force")
        data = load_dataset(reg, source)
        traj = load_trajectory(verify_artifact(arts[-1]))
        if not np.array_equal(traj.species, data.species):
            raise CrmseError(f"sample run {run.id} is not of dataset {source!r}'s molecule")
        picks = pick_frames(
            traj, frames, seed=seed, window_steps=window_steps, per_left=per_left, burn_in_steps=burn_in_steps
        )
        x = traj.positions[picks.frame, picks.replica].astype(np.float64)
        t0 = time.perf_counter()
        energies, forces = label_frames(data.species, x, method)
        label_s = time.perf_counter() - t0
        active.update(
            near_leaving=int(picks.near_leaving.sum()), label_method=method, tblite_version=tblite_version(),
            label_wall_s=label_s, replica=picks.replica.tolist(), step=picks.step.tolist(),
        )  # fmt: skip
        meta = {
            **{k: v for k, v in src_info.meta.items() if k not in ("name", "units", "format_version")},
            "kind": "active",
            "active": active,
        }
        new = extend(data, name, x, energies, forces, split, meta)
        fetched = _save_and_register(ws, reg, new, origin=f"active:{run.name or run.id}@{source}", meta=meta)
    finally:
        reg.close()
    log.info("%s: %d frames added (%d near leaving) in %.1f s", name, frames, active["near_leaving"], label_s)
    return ActiveFetchResult(fetched, int(frames), int(picks.near_leaving.sum()), label_s)


def extend(
    data: Dataset,
    name: str,
    positions_A: np.ndarray,
    energies: np.ndarray,
    forces: np.ndarray,
    split: str,
    meta: JsonDict,
) -> Dataset:
    """``data``'s frames then the new ones, split ``split`` only, its training part extended.

    The new rows join the training part and its ``added`` part (an earlier ``added`` part is kept,
    so rounds chain); the test part is unchanged.
    """
    train, test = data.split(split)
    rows = np.arange(data.n_frames, data.n_frames + len(energies), dtype=np.int64)
    parts = {
        "train": np.concatenate([train, rows]),
        "test": test,
        ADDED: np.concatenate([data.added_rows(split), rows]),
    }
    return Dataset(
        name=name,
        species=data.species,
        positions=np.concatenate([data.positions, positions_A]),
        energies=np.concatenate([data.energies, energies]),
        forces=np.concatenate([data.forces, forces]),
        frame_ids=np.concatenate([data.frame_ids, data.frame_ids.max() + 1 + np.arange(len(rows))]),
        splits={split: parts},
        meta=meta,
    )


def result_dict(res: ActiveFetchResult) -> JsonDict:
    """JSON-ready form of a result (the CLI's ``--json``)."""
    return asdict(res)
