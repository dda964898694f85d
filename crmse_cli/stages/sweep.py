"""`crmse sweep`: a lambda x seed grid of CRMSE runs, queued in the registry, drained by workers.

A sweep is a ``sweeps`` row (the grid and its settings) plus one job per (source model, lambda,
seed): a ``regularize`` run created in status ``queued``. ``crmse sweep work NAME`` claims the
next queued job (a row lock, see :mod:`crmse_cli.registry.sweeps`), runs it with the ordinary
stage functions -- :func:`~crmse_cli.stages.regularize.regularize`, then
:func:`~crmse_cli.stages.sample.sample` of the regularized model and
:func:`~crmse_cli.stages.evaluate.evaluate` of the samples -- and takes the next, until none is
left. Any number of workers, on any number of machines sharing one PostgreSQL registry, can drain
one sweep. Every run is an ordinary registry run (``crmse runs``, ``crmse show``, ``crmse
compare`` see them); the queued run's config holds ``sweep`` = {name, position, source, lambda,
seed}, and sample/evaluate runs are its children.

A worker that dies (SIGKILL, power loss) holds a lease that goes dead: same host and its pid gone,
or no heartbeat for ``stale_after_s`` seconds. The next worker marks its runs ``interrupted`` and
re-queues the job; the job then resumes the regularize run from its last checkpoint (the stage's
own ``resume``), or re-runs sample/evaluate if regularization had finished. Options of the grid
are passed through by name: any :class:`~crmse_cli.train.contrastive.ContrastiveConfig` or
:class:`~crmse_cli.stages.regularize.RegularizeConfig` field for regularization, any
:class:`~crmse_cli.stages.sample.SampleConfig` field for sampling.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crmse_cli.errors import CrmseError
from crmse_cli.registry.store import Registry
from crmse_cli.registry.sweeps import QueuedJob
from crmse_cli.sampling.sample_config import SampleConfig
from crmse_cli.stages._grid import refuse_grid_keys, regularize_config, sample_config
from crmse_cli.stages._models import MODEL_KINDS
from crmse_cli.stages._run import RunContext
from crmse_cli.train.contrastive_config import ContrastiveConfig
from crmse_cli.validate import check_field, check_option
from crmse_cli.workspace import Workspace

if TYPE_CHECKING:
    from crmse_cli.registry.entities import RunInfo
    from crmse_cli.registry.sweeps import SweepJobInfo

log = logging.getLogger(__name__)

STALE_AFTER_S = 600.0
"""A running job whose worker sent no heartbeat for this long is re-queued (other hosts)."""
HEARTBEAT_S = 30.0
"""How often a worker refreshes the lease of the job it runs."""
STALE_BEATS = 2.0
"""``stale_after_s`` must exceed this many heartbeat intervals: a lease one beat old is alive,
and a beat may come late on a loaded machine or database."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


@dataclass(frozen=True)
class SweepCreated:
    """The outcome of :func:`create_sweep`: the sweep's name and its queued run ids."""

    name: str
    run_ids: list[str]


@dataclass(frozen=True)
class WorkResult:
    """The outcome of one worker: run ids it finished, that failed, and that it requeued."""

    done: list[str]  # regularize run ids whose job this worker finished
    failed: list[str]
    requeued: list[str]  # runs of dead workers this worker put back in the queue


def create_sweep(
    ws: Workspace,
    name: str,
    *,
    sources: list[str],
    lambdas: list[float],
    seeds: list[int],
    regularize_options: Mapping[str, object] | None = None,
    sample_options: Mapping[str, object] | None = None,
    device: str = "cpu",
    registry: Registry | None = None,
) -> SweepCreated:
    """Queue one regularize run per (source, seed, lambda), in that order; nothing runs yet.

    Args:
        ws: the workspace.
        registry: an open registry to use (default: the workspace's).
        name: the sweep's unique name (letters, digits, ``_.-``); runs are named
            ``NAME.SOURCE.lamLAMBDA.sSEED``.
        sources: model runs (pretrain or regularize, completed), by id or name.
        lambdas: contrastive weights (``ContrastiveConfig.lambda_``; 0 is the control).
        seeds: seeds of chains, batches and sampling.
        regularize_options: ContrastiveConfig / RegularizeConfig fields by name (e.g.
            ``{"n_updates": 50, "lr": 1e-4}``), checked now.
        sample_options: SampleConfig fields by name (e.g. ``{"replicas": 64, "steps": 20000}``).
        device: "cpu" or "cuda" for every stage.
    """
    reg_opts, smp_opts = dict(regularize_options or {}), dict(sample_options or {})
    if not _NAME.match(name) or all(c in "0123456789abcdef" for c in name):
        raise CrmseError(
            f"sweep name {name!r}: use 1-80 letters, digits, '_', '.', '-', with a letter beyond a-f"
        )
    if not sources or not lambdas or not seeds:
        raise CrmseError("a sweep needs at least one --from model, one --lambda and one --seeds value")
    if len(set(lambdas)) != len(lambdas) or len(set(seeds)) != len(seeds):
        raise CrmseError("--lambda and --seeds values must not repeat")
    refuse_grid_keys(reg_opts, "--set")
    refuse_grid_keys(smp_opts, "--sample-set")
    for lam in lambdas:  # every point's values, not only the first: none may fail later
        check_field("--lambda", lam, ContrastiveConfig, "lambda_")
    for seed in seeds:
        check_field("--seeds", seed, ContrastiveConfig, "seed")
        check_field("--seeds", seed, SampleConfig, "seed")
    first = regularize_config(reg_opts, lambda_=lambdas[0], seed=seeds[0], device=device)  # fail now
    sample_config(smp_opts, seed=seeds[0], device=device)
    reg = registry or Registry.open(ws.ensure())
    jobs: list[QueuedJob] = []
    for ref in sources:
        src = reg.get_run(ref)
        if src.kind not in MODEL_KINDS or src.status != "completed":
            raise CrmseError(
                f"--from {ref}: run {src.id} is a {src.status} {src.kind} run; pass a completed model run"
            )
        label = src.name or src.id
        for seed in seeds:
            for lam in lambdas:
                point = {"name": name, "position": len(jobs), "source": src.id, "lambda": lam, "seed": seed}
                config = {
                    "sweep": point,
                    "dataset": src.dataset,
                    "source_run": src.id,
                    "lambda": lam,
                    "regularize_options": reg_opts,
                    "sample_options": smp_opts,
                    "device": device,
                }
                jobs.append(
                    QueuedJob(
                        name=f"{name}.{label}.lam{lam:g}.s{seed}",
                        dataset=src.dataset,
                        parent=src.id,
                        seed=seed,
                        config=config,
                        params=point,
                    )
                )
    spec = {
        "sources": list(dict.fromkeys(str(j.parent) for j in jobs)),
        "lambdas": list(lambdas),
        "seeds": list(seeds),
        "regularize_options": reg_opts,
        "sample_options": smp_opts,
        "device": device,
        "lambda_units": getattr(first.contrastive, "lambda_units", None),
    }
    reg.create_sweep(name=name, config=spec, jobs=jobs)
    return SweepCreated(name, [j.run_id for j in reg.sweep_jobs(name)])


class _Heartbeat:
    """A daemon thread that refreshes a job's lease every ``every_s`` seconds while it runs."""

    def __init__(self, registry: Registry, job_id: int, every_s: float) -> None:
        self._reg, self._job, self._every = registry, job_id, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"sweep-heartbeat-{job_id}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self._every):
            try:
                if not self._reg.heartbeat_job(self._job):
                    log.warning(
                        "sweep job %s was re-queued by another worker; finishing it anyway", self._job
                    )
            except Exception as exc:  # the database is unreachable for a moment: keep working
                log.warning("sweep heartbeat failed: %s", exc)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _child_name(reg: Registry, base: str | None, suffix: str) -> str | None:
    if base is None:
        return None
    taken = {r.name for r in reg.list_runs()}
    name, k = f"{base}.{suffix}", 2
    while name in taken:
        name, k = f"{base}.{suffix}{k}", k + 1
    return name


def completed_run(runs: list[RunInfo]) -> RunInfo | None:
    """The last completed run of ``runs`` (a grid point's sample or evaluate run), if any."""
    done = [r for r in runs if r.status == "completed"]
    return done[-1] if done else None


@dataclass(frozen=True)
class GridPoint:
    """One job's point of the grid, as ``create_sweep`` recorded it in the job's params."""

    source: str  # the model run it starts from
    lambda_: float
    seed: int

    @classmethod
    def of(cls, sweep: str, job: SweepJobInfo) -> GridPoint:
        """The point of ``job``; a one-line error when its row lacks a field (named in it)."""
        params = job.params if isinstance(job.params, dict) else {}
        try:
            return cls(str(params["source"]), float(params["lambda"]), int(params["seed"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CrmseError(
                f"grid point {job.position} of sweep {sweep!r} (run {job.run_id}) has unusable params "
                f"{params!r} (needs source, lambda and seed; the row was changed outside crmse); "
                "recreate the sweep with `crmse sweep create`"
            ) from exc


def _table(spec: Mapping[str, object], key: str) -> Mapping[str, object]:
    """The options table ``key`` of a sweep's recorded config."""
    value = spec[key]
    if not isinstance(value, Mapping):
        raise CrmseError(
            f"the sweep's config records {key!r} as {value!r}, not a table; create the sweep again"
        )
    return value


def run_job(ws: Workspace, reg: Registry, job: SweepJobInfo, spec: Mapping[str, object]) -> None:
    """Bring one grid point to its end: regularize (start or resume), sample, evaluate."""
    # Deferred: the stages (scipy, ase) load when a job runs, not for `sweep status` or `list`.
    from crmse_cli.stages import regularize as crmse
    from crmse_cli.stages.evaluate import evaluate
    from crmse_cli.stages.sample import sample

    device, p = str(spec.get("device", "cpu")), GridPoint.of(job.sweep, job)
    run = reg.get_run(job.run_id)
    if run.status not in ("queued", "completed") and not reg.checkpoints(run.id):
        reg.set_status(run.id, "queued", error=None)  # killed before its first checkpoint: start over
        run = reg.get_run(run.id)
    if run.status == "queued":
        cfg = regularize_config(
            _table(spec, "regularize_options"), lambda_=p.lambda_, seed=p.seed, device=device
        )
        planned = crmse.plan(ws, reg, p.source, cfg)
        assert planned.new_run is not None  # a plan without resume= always starts a new run
        # The queued run starts as a new one would: same row, same lock, same closing.
        crmse.execute(RunContext.create(ws, reg, planned.new_run, queued=run.id), planned)
    elif run.status != "completed":
        crmse.regularize(ws, None, crmse.RegularizeConfig(device=device), resume=run.id, registry=reg)
    smp = completed_run(reg.children(run.id, kind="sample"))
    if smp is None:
        cfg_s = sample_config(_table(spec, "sample_options"), seed=p.seed, device=device)
        smp = reg.get_run(
            sample(ws, run.id, cfg_s, name=_child_name(reg, run.name, "sample"), registry=reg).run_id
        )
    if completed_run(reg.children(smp.id, kind="evaluate")) is None:
        name = _child_name(reg, run.name, "evaluate")
        evaluate(ws, smp.id, name=name, device=device, seed=p.seed, registry=reg)


def check_stale_after(stale_after_s: float, heartbeat_s: float = HEARTBEAT_S) -> None:
    """Refuse a staleness limit that is not a number above ``STALE_BEATS`` heartbeat intervals.

    A shorter limit would take the jobs of live workers on other hosts (and run points twice).
    """
    check_option("--stale-after-s", stale_after_s)
    least = STALE_BEATS * heartbeat_s
    if stale_after_s <= least:
        raise CrmseError(
            f"--stale-after-s must exceed {STALE_BEATS:g} heartbeat intervals ({least:g} s: workers "
            f"refresh their lease every {heartbeat_s:g} s), got {stale_after_s:g}"
        )


def work(
    ws: Workspace,
    name: str,
    *,
    max_jobs: int | None = None,
    stale_after_s: float = STALE_AFTER_S,
    heartbeat_s: float = HEARTBEAT_S,
    retry_failed: bool = False,
    registry: Registry | None = None,
) -> WorkResult:
    """Drain sweep ``name``: claim a queued job, run it, repeat until none is left (or ``max_jobs``).

    Jobs of dead workers are re-queued first (see the module docstring). A job that raises is
    marked ``failed`` with the one-line error and the worker takes the next; Ctrl-C (and SIGTERM,
    which the CLI turns into Ctrl-C) puts the job back in the queue (its regularize run
    ``interrupted`` and resumable) and stops the worker. ``retry_failed``
    first re-queues the failed jobs (a failed regularize run resumes from its last checkpoint).

    Raises:
        CrmseError: ``stale_after_s`` is not a finite number above ``STALE_BEATS`` heartbeats.
    """
    check_stale_after(stale_after_s, heartbeat_s)
    reg = registry or Registry.open(ws.ensure())
    spec = reg.get_sweep(name).config
    if retry_failed:
        reg.requeue_failed_jobs(name)
    done: list[str] = []
    failed: list[str] = []
    requeued: list[str] = []
    while max_jobs is None or len(done) + len(failed) < max_jobs:
        requeued += [j.run_id for j in reg.requeue_dead_jobs(name, stale_after_s=stale_after_s)]
        job = reg.claim_job(name)
        if job is None:
            break
        log.info("sweep %s: job %d (run %s)", name, job.position, job.run_id)
        try:
            with _Heartbeat(reg, job.id, heartbeat_s):
                run_job(ws, reg, job, spec)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM through the CLI's handler
            reg.finish_job(
                job.id, "queued", error="its worker was interrupted (Ctrl-C or SIGTERM); re-queued"
            )
            exc.crmse_message = (  # type: ignore[attr-defined]  # the CLI's last line
                f"sweep {name}: run {job.run_id} interrupted and its job re-queued; "
                f"continue with `crmse sweep work {name}`"
            )
            raise
        except Exception as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if not isinstance(exc, CrmseError):
                msg = f"{type(exc).__name__}: {msg}"
            log.error("sweep %s: run %s failed: %s", name, job.run_id, msg)
            reg.finish_job(job.id, "failed", error=msg)
            failed.append(job.run_id)
        else:
            reg.finish_job(job.id, "done")
            done.append(job.run_id)
    return WorkResult(done, failed, requeued)
