"""`crmse stabilize`: from a model that leaves the basin in MD to a stable one, in one command.

import (MACE) -> stability screen before -> its evaluation -> CRMSE -> an MSE-only polish whose
length the force budget picks on held-out frames (:mod:`crmse_cli.stages.recipe`, issue 29's
recipe; ``--recipe crmse``: CRMSE alone with the budget's candidates along it, as before) -> the
same screen after -> its evaluation -> held-out errors (``--test``) -> diagnose -> report ->
export in the format the model came in -> one verdict block.

Every step is an ordinary registry run named ``<name>-<step>`` (``<name>-import``,
``<name>-before``, ``<name>-before-eval``, ``<name>-crmse``, ``<name>-polish``, ``<name>-after``,
``<name>-after-eval``, ``<name>-diagnose``), made by the stage functions the single commands call,
so ``crmse runs`` and ``crmse show`` inspect each. A rerun reuses the completed steps, resumes an
interrupted CRMSE or polish run and starts the other interrupted steps again under a fresh name
(``...~2``), as ``reproduce`` does. The verdict is :func:`crmse_cli.report.verdict.verdict_lines`
of the runs' stored metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from crmse_cli.errors import CrmseError
from crmse_cli.metric import metric_rows
from crmse_cli.registry.store import Registry
from crmse_cli.report.verdict import evidence, verdict_lines
from crmse_cli.sampling.sample_config import SampleConfig
from crmse_cli.stages import compare as compare_stage
from crmse_cli.stages import diagnose as diagnose_stage
from crmse_cli.stages import evaluate as evaluate_stage
from crmse_cli.stages import sample as sample_stage
from crmse_cli.stages._models import check_species, load_dataset, resolve_model, run_checkpoint
from crmse_cli.stages.fetch import fetch_xyz
from crmse_cli.stages.mace import export_model, import_mace
from crmse_cli.stages.recipe import Recipe, recipe, run_recipe
from crmse_cli.stages.regularize_config import RegularizeConfig
from crmse_cli.stages.reproduce import _find, _step
from crmse_cli.stages.stabilize_config import StabilizeConfig
from crmse_cli.stages.stabilize_plan import IMPORT_SPLIT_SEED, VAL_FRACTION, Plan, plan
from crmse_cli.train.accuracy import frame_errors
from crmse_cli.train.budget import BudgetConfig, configured_budget
from crmse_cli.train.contrastive import ContrastiveConfig
from crmse_cli.workspace import Workspace

log = logging.getLogger(__name__)

HELDOUT = "heldout"
"""Metric prefix of the errors on a ``--test`` file (``heldout_force_mae``, ...); evaluate runs' rows."""


@dataclass
class StabilizeResult:
    """The journey's outcome.

    Attributes:
        name: the steps' name prefix.
        runs: step -> run id (``import``, ``before``, ``before-eval``, ``crmse``, ``polish``,
            ``after``, ``after-eval``, ``diagnose``, ``compare``).
        reused: steps whose completed run an earlier call had made.
        report: the comparison report (before vs after).
        model: the stabilized model: the exported MACE file, or the checkpoint of the last
            post-training run (the polish, or CRMSE with ``--recipe crmse``).
        verdict: the verdict block, one fact a line.
    """

    name: str
    runs: dict[str, str] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    report: Path | None = None
    model: Path | None = None
    verdict: list[str] = field(default_factory=list)


def sample_config(cfg: StabilizeConfig) -> SampleConfig:
    """The stability screen before and after: Langevin at the user's temperature."""
    return SampleConfig(
        temperature_K=cfg.temperature_K,
        replicas=cfg.replicas,
        steps=cfg.steps,
        record_every=cfg.record_every,
        seed=cfg.seed,
        processes=cfg.processes,
    )


def regularize_config(cfg: StabilizeConfig) -> RegularizeConfig:
    """CRMSE with the force-budget rule, its candidate screens at the user's temperature.

    ``--recipe crmse`` runs it as it is; ``crmse+polish`` drops the budget from CRMSE and gives
    it to the polish (:func:`crmse_cli.stages.recipe.recipe`).
    """
    c = ContrastiveConfig(seed=cfg.seed)
    if cfg.updates is not None:
        c = replace(c, n_updates=cfg.updates)
    if cfg.lambda_ is not None:
        c = replace(c, lambda_=cfg.lambda_)
    budget = BudgetConfig(
        force_budget=cfg.force_budget,
        budget_every=cfg.budget_every,
        screen_replicas=cfg.screen_replicas,
        screen_steps=cfg.screen_steps,
        screen_temperature_K=cfg.temperature_K,
    )
    return RegularizeConfig(contrastive=c, budget=budget)


def _ours(reg: Registry, run_id: str, step: str, parent: str | None) -> str:
    """``run_id`` if it is this journey's step (its parent is ``parent``), else a one-line refusal."""
    run = reg.get_run(run_id)
    if parent is not None and run.parent != parent:
        raise CrmseError(
            f"run {run.name!r} exists and is not the {step} step of this model (its parent is {run.parent}); "
            "pass --name NEW to stabilize under other run names"
        )
    return run_id


def stabilize(
    ws: Workspace,
    model: str,
    *,
    data: str | None = None,
    config: StabilizeConfig | None = None,
    name: str | None = None,
    dataset_name: str | None = None,
    test: Path | str | None = None,
    out: Path | str | None = None,
    energy_unit: str = "eV",
    energy_key: str | None = None,
    forces_key: str | None = None,
    regularize: RegularizeConfig | None = None,
    registry: Registry | None = None,
) -> StabilizeResult:
    """Stabilize ``model`` (see the module docstring); every step a registry run, resumable.

    Args:
        ws: the workspace (``trust_code``: the user's ``--trust-code`` for a MACE file).
        model: a mace-torch ``.model`` file, a crmse checkpoint, or a crmse run id / name.
        data: MACE: its extended-XYZ training file or a registered dataset; crmse: None.
        config: the journey's settings (:class:`StabilizeConfig`).
        name: prefix of the steps' run names (default: the model's file stem or run name).
        dataset_name: the dataset name of a ``data`` file (default: its stem).
        test: extended-XYZ file of held-out labelled frames (default: the split's test frames).
        out: the stabilized MACE model's path (default ``<stem>-stable.model`` beside MODEL).
        energy_unit: the extended-XYZ files' energy unit ("eV" or "kcal/mol").
        energy_key: their energy key (e.g. ``REF_energy``).
        forces_key: their forces key (e.g. ``REF_forces``).
        regularize: the CRMSE run's full settings instead of those ``config`` implies (the
            polish's derive from them: :func:`crmse_cli.stages.recipe.polish_config`).
        registry: an open Registry (default: ``Registry.open(ws)``).
    """
    cfg = config or StabilizeConfig()
    reg = registry or Registry.open(ws.ensure())
    p = plan(
        ws, reg, model, data=data, name=name, dataset_name=dataset_name, test=test, out=out,
        energy_unit=energy_unit, energy_key=energy_key, forces_key=forces_key,
    )  # fmt: skip
    res = StabilizeResult(name=p.name)
    plan_ = recipe(
        cfg.recipe,
        regularize or regularize_config(cfg),
        force_budget=cfg.force_budget,
        polish_updates=cfg.polish_updates,
        polish_every=cfg.polish_every,
    )
    try:
        _run_steps(ws, reg, p, cfg, plan_, res)
    except KeyboardInterrupt as exc:  # the CLI prints this line instead of the step's own hint
        where = getattr(exc, "crmse_message", "interrupted")
        exc.crmse_message = (  # type: ignore[attr-defined]
            f"stabilize {p.name}: {where}; run the same `crmse stabilize` command again to continue "
            "(finished steps are reused, CRMSE resumes)"
        )
        raise
    res.verdict = verdict(reg, p, res)
    return res


def _track(reg: Registry, res: StabilizeResult, step: str, base: str) -> None:
    if any(r.status == "completed" for r in _find(reg, base)):
        res.reused.append(step)


def _run_steps(
    ws: Workspace, reg: Registry, p: Plan, cfg: StabilizeConfig, plan_: Recipe, res: StabilizeResult
) -> None:
    def step(
        what: str, start: Callable[[str], str], parent: str | None, resume: Callable[[str], str] | None = None
    ) -> str:
        _track(reg, res, what, p.step(what))
        log.info("stabilize %s: %s", p.name, what)
        res.runs[what] = _ours(reg, _step(reg, p.step(what), start=start, resume=resume), what, parent)
        return res.runs[what]

    def screen(label: str, model_ref: str, parent: str | None) -> None:
        sid = step(label, lambda n: sample_stage.sample(ws, model_ref, scfg, name=n).run_id, parent)
        eid = step(
            f"{label}-eval", lambda n: evaluate_stage.evaluate(ws, sid, name=n, seed=cfg.seed).run_id, sid
        )
        if p.test_dataset is not None:
            _heldout(ws, reg, p, eid, model_ref)

    source = _import(ws, reg, p, res) if p.kind == "mace" else p.model
    model_run = source if p.kind == "mace" else p.model_run
    scfg = sample_config(cfg)
    screen("before", source, model_run)
    runs = run_recipe(
        ws,
        reg,
        source,
        plan_,
        step=lambda what, start, resume, parent: step(what, start, parent, resume),
        parent=model_run,
    )
    crmse = runs.model  # the stabilized model: the polish, or CRMSE alone
    screen("after", crmse, crmse)
    if model_run is not None:
        step(
            "diagnose",
            lambda n: diagnose_stage.diagnose(ws, crmse, against=model_run, name=n).run_id,
            crmse,
        )
    pair = [res.runs["before"], res.runs["after"]]
    done = [
        r for r in reg.list_runs(kind="compare")
        if r.status == "completed" and r.config.get("sample_runs") == pair
        and reg.artifacts(r.id, kind="report")
    ]  # fmt: skip
    if done:
        res.runs["compare"], res.reused = done[-1].id, [*res.reused, "compare"]
    else:
        what = "CRMSE + MSE polish" if plan_.polish is not None else "CRMSE"
        title = f"stabilize {p.name}: before vs after {what} at {cfg.temperature_K:g} K"
        res.runs["compare"] = compare_stage.compare(ws, pair, title=title, registry=reg).run_id
    res.report = Path(reg.artifacts(res.runs["compare"], kind="report")[-1].path)
    res.model = _export(ws, reg, p, crmse)


def _import(ws: Workspace, reg: Registry, p: Plan, res: StabilizeResult) -> str:
    """The MACE model as a completed model run (reused when this journey imported it already)."""
    _track(reg, res, "import", p.step("import"))

    def start(run_name: str) -> str:
        return import_mace(
            ws, p.model, p.data_file, dataset=p.dataset, val_fraction=VAL_FRACTION,
            split_seed=IMPORT_SPLIT_SEED, name=run_name, registry=reg, **p.import_options,
        ).run_id  # fmt: skip

    run_id = _step(reg, p.step("import"), start=start)
    run = reg.get_run(run_id)
    if run.config.get("imported_sha256") != p.model_sha256 or run.dataset != p.dataset:
        raise CrmseError(
            f"run {run.name!r} imported another model or dataset; "
            "pass --name NEW to stabilize under other run names"
        )
    res.runs["import"] = run_id
    return str(run_id)


def _heldout(ws: Workspace, reg: Registry, p: Plan, eval_id: str, model_ref: str) -> None:
    """Errors of the model on the ``--test`` frames, logged as ``heldout_*`` rows of its evaluate run."""
    if any(k.startswith(HELDOUT + "_") for k in reg.final_metrics(eval_id)):
        return
    assert p.test_file is not None and p.test_dataset is not None
    fetch_xyz(ws, p.test_file, name=p.test_dataset, **p.import_options)
    data = load_dataset(reg, p.test_dataset)
    handle = resolve_model(reg, model_ref, trust_code=ws.trust_code)
    check_species(handle, data)
    import numpy as np

    errors = frame_errors(handle.potential, data, np.arange(data.n_frames), prefix=HELDOUT)
    reg.log_metrics(eval_id, metric_rows(errors, split="test"))


def _export(ws: Workspace, reg: Registry, p: Plan, model_id: str) -> Path:
    """MACE in, MACE out (``p.out``); a crmse model stays its run's checkpoint."""
    if p.kind == "mace":
        assert p.out is not None
        return Path(export_model(ws, model_id, p.out, registry=reg))
    return Path(run_checkpoint(reg, reg.get_run(model_id)))


def verdict(reg: Registry, p: Plan, res: StabilizeResult) -> list[str]:
    """The verdict block of a finished journey, from its runs' stored metrics."""

    def finals(step: str) -> dict[str, float]:
        return {k: m.value for k, m in reg.final_metrics(res.runs[step]).items()} if step in res.runs else {}

    prefix = HELDOUT if p.test_file is not None else "test"
    label = f"held-out ({p.test_file.name})" if p.test_file is not None else "test"
    lines = verdict_lines(
        evidence(finals("before"), finals("before-eval")),
        evidence(finals("after"), finals("after-eval")),
        diagnosis=finals("diagnose") or None,
        budget=finals("polish") or finals("crmse"),
        force_budget=configured_budget(reg.get_run(res.runs.get("polish") or res.runs["crmse"]).config),
        wrote=str(res.model) if p.kind == "mace" else None,
        error_prefix=prefix,
        error_label=label,
    )
    if p.kind == "crmse":
        lines.append(f"stabilized checkpoint: {res.model}")
    return lines
