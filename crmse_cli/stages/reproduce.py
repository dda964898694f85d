"""`crmse reproduce`: the whole pipeline on one molecule.

fetch -> pretrain -> sample (MSE) -> regularize -> MSE polish -> sample (CRMSE) -> evaluate ->
diagnose -> compare -> the verdict (:func:`crmse_cli.report.verdict.verdict_lines`, the lines
``crmse stabilize`` ends with). The CRMSE arm is :func:`crmse_cli.stages.recipe.run_recipe`, the
recipe ``stabilize`` runs: CRMSE, then an MSE-only polish whose length the force budget picks on
held-out frames (``--recipe crmse``: CRMSE alone, as before); its model is the one sampled.
``reproduce ethanol`` and ``reproduce aspirin`` run on rMD17 (the paper's path);
``reproduce ethanol-xtb`` and ``reproduce aspirin-xtb`` generate an exact 500 K GFN2-xTB
reference first (:data:`XTB_REFERENCES`: no download, no ``../shared``).

Every step is an ordinary registry run named ``repro-<molecule>-<preset>-n<n_train>-s<seed>-<step>``
(``n_train`` the training frames, the preset's unless ``--n-train`` is given),
so ``crmse runs`` lists them and each can be rerun alone. Rerunning ``reproduce`` reuses the
steps that completed (a sample, evaluate or diagnose step only when it is of the same model),
resumes an interrupted pretrain or regularize run, and starts the other steps again under a fresh
name (``...~2``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from crmse_cli.data.xtb_md import XtbMDConfig
from crmse_cli.defaults import TEMPERATURE_K
from crmse_cli.errors import CrmseError
from crmse_cli.registry.store import Registry
from crmse_cli.report.verdict import evidence, verdict_lines
from crmse_cli.stages import compare as compare_stage
from crmse_cli.stages import diagnose as diagnose_stage
from crmse_cli.stages import evaluate as evaluate_stage
from crmse_cli.stages import fetch as fetch_stage
from crmse_cli.stages import fetch_xtb
from crmse_cli.stages import pretrain as pretrain_stage
from crmse_cli.stages import regularize as regularize_stage
from crmse_cli.stages import sample as sample_stage
from crmse_cli.stages.recipe import RecipeRuns, recipe, run_recipe
from crmse_cli.stages.regularize_config import RegularizeConfig
from crmse_cli.stages.sample import SampleConfig
from crmse_cli.stages.stabilize_config import FORCE_BUDGET, POLISH_EVERY, POLISH_UPDATES, RECIPES
from crmse_cli.train.budget import configured_budget
from crmse_cli.train.contrastive import ContrastiveConfig
from crmse_cli.validate import check_option
from crmse_cli.workspace import Workspace

if TYPE_CHECKING:
    from crmse_cli.registry.store import RunInfo


@dataclass(frozen=True)
class Preset:
    """Sizes of one reproduction.

    Attributes:
        pretrain: overrides of the pretrain preset ``base`` (see ``stages.pretrain.PRESETS``).
        sample: the sampling config of every model.
        contrastive: the CRMSE post-training config.
        control: also run the lambda = 0 control (same fine-tuning, no contrastive term).
        polish_updates: updates of the MSE polish after CRMSE (recipe ``crmse+polish``).
        polish_every: updates between the polish's candidates.
        base: the pretrain preset; None means the one of the same name.
        hidden: left out of ``--help`` and error messages (test sizes).
        caveat: what the numbers are worth, printed above the verdict and in the report's title
            (None: nothing to say).
    """

    pretrain: Mapping[str, object]
    sample: SampleConfig
    contrastive: ContrastiveConfig
    control: bool
    polish_updates: int = POLISH_UPDATES
    polish_every: int = POLISH_EVERY
    base: str | None = None
    hidden: bool = False
    caveat: str | None = None


QUICK_CAVEAT = "quick: one seed, not converged"
"""What the quick preset's numbers are worth: the last line of its verdict, and its report's title."""

PRESETS: dict[str, Preset] = {
    # How long it takes: --preset's help (crmse_cli/cli/reproduce_cmd.py) and the README. A model
    # that fails where it is run: the quick pretrain preset (200 epochs) on only 200 training
    # frames leaves the basin at 500 K (README: what the quick run shows).
    "quick": Preset(
        pretrain={"n_train": 200},
        sample=SampleConfig(replicas=32, steps=4000, record_every=20),
        contrastive=ContrastiveConfig(n_chains=16, n_updates=40, steps_per_update=200, warmup_updates=10),
        control=False,
        caveat=QUICK_CAVEAT,
    ),
    # The paper's sizes (ethanol 1000 training frames) and the project's best defaults.
    "paper": Preset(
        pretrain={},
        sample=SampleConfig(replicas=128, steps=20000, record_every=20),
        contrastive=ContrastiveConfig(),
        control=True,
    ),
    # Hidden: the quick pipeline at sizes that run in well under a minute, for the end-to-end
    # test (tests/test_reproduce.py). Its numbers mean nothing.
    "tiny": Preset(
        pretrain={"n_train": 60, "n_val": 20, "max_epochs": 2},
        sample=SampleConfig(replicas=4, steps=60, record_every=10),
        contrastive=ContrastiveConfig(
            n_chains=4, n_updates=2, steps_per_update=5, warmup_updates=1, batch_size=8
        ),
        control=False,
        polish_updates=2,
        polish_every=1,
        base="quick",
        hidden=True,
        caveat=f"{QUICK_CAVEAT}; tiny test sizes, the numbers mean nothing",
    ),
}


MOLECULE_PRESETS: dict[str, dict[str, Preset]] = {
    # Aspirin (21 atoms) costs ~4.5x ethanol per replica-step (docs/results.md, sampler rates), so
    # its quick preset halves the pretrain epochs, the sampled time (1 ps) and the CRMSE chain
    # steps to stay near ethanol's quick wall time; still 200 training frames, so MSE is tested
    # where it is thin.
    "aspirin": {
        "quick": Preset(
            pretrain={"n_train": 200, "max_epochs": 100},
            sample=SampleConfig(replicas=32, steps=2000, record_every=20),
            contrastive=ContrastiveConfig(n_chains=16, n_updates=30, steps_per_update=100, warmup_updates=10),
            control=False,
            caveat=QUICK_CAVEAT,
        ),
    },
}
"""Per-molecule sizes that replace a preset of :data:`PRESETS` (key: the molecule of an xTB
reference, else the dataset name)."""


XTB_REFERENCES: dict[str, tuple[str, XtbMDConfig]] = {
    # 2000 frames (splits of 500 train / 500 test / 1000 reference) from 4 replicas of 5 ps after
    # 1 ps of equilibration, every 10 fs: 48,000 GFN2 force calls, about a minute on one core.
    "ethanol-xtb": (
        "ethanol",
        XtbMDConfig(
            temperature_K=TEMPERATURE_K, frames=2000, stride=20, replicas=4, equilibration_ps=1.0, seed=0
        ),
    ),
    # The paper preset's: 4000 frames (splits of 1000 train / 1000 test / 2000 reference, so 950
    # + 50 training frames as the paper) from 8 replicas of 10 ps after 1 ps, every 10 fs:
    # 96,000 GFN2 force calls at ~19 ms of CPU each for aspirin (~9x ethanol's; docs/results.md),
    # ~30 min of CPU (`--processes` runs the replicas side by side).
    "aspirin-xtb": (
        "aspirin",
        XtbMDConfig(
            temperature_K=TEMPERATURE_K, frames=4000, stride=20, replicas=8, equilibration_ps=1.0, seed=0
        ),
    ),
    # The quick preset's: 1200 frames (300 train / 300 test / 600 reference) from 4 replicas of
    # 1.5 ps after 0.5 ps, every 5 fs: 16,000 force calls, ~5 min of CPU (2.5 min with
    # --processes 2). Its profile noise floors are the evaluate runs' dihedral_profile_floor rows.
    "aspirin-xtb-quick": (
        "aspirin",
        XtbMDConfig(
            temperature_K=TEMPERATURE_K, frames=1200, stride=10, replicas=4, equilibration_ps=0.5, seed=0
        ),
    ),
}
"""Dataset names that ``reproduce`` generates when they are not registered: (molecule, settings)."""

PRESET_DATASETS: dict[tuple[str, str], str] = {("aspirin-xtb", "quick"): "aspirin-xtb-quick"}
"""(molecule argument, preset) -> the dataset it runs on, where a preset needs its own reference
size (aspirin's xTB force calls are too dear for a paper-sized reference in the quick preset)."""


def preset_for(preset: str, dataset: str) -> Preset:
    """The sizes of ``preset`` on ``dataset``: its molecule's (:data:`MOLECULE_PRESETS`) or PRESETS'."""
    molecule = XTB_REFERENCES[dataset][0] if dataset in XTB_REFERENCES else dataset
    return MOLECULE_PRESETS.get(molecule, {}).get(preset, PRESETS[preset])


def ensure_dataset(
    ws: Workspace, reg: Registry, name: str, from_path: Path | None, processes: int = 1
) -> None:
    """Register dataset ``name`` if it is not: generate an xTB reference or fetch rMD17."""
    if reg.find_dataset(name) is not None:
        return
    if name in XTB_REFERENCES:
        molecule, cfg = XTB_REFERENCES[name]
        fetch_xtb.fetch_xtb(ws, molecule, cfg, name=name, processes=processes)
    else:
        fetch_stage.fetch_rmd17(ws, name, from_path=from_path)


@dataclass
class ReproduceResult:
    """The outcome of :func:`reproduce`.

    Run ids by step, the report, the evaluate runs' metrics by model label (name -> (value,
    unit)) and the wall-clock seconds.
    """

    runs: dict[str, str] = field(default_factory=dict)  # step -> run id
    report: Path | None = None
    metrics: dict[str, dict[str, tuple[float, str]]] = field(default_factory=dict)  # label -> metrics
    wall_s: float = 0.0
    reference_check: Mapping[str, object] | None = None  # the xTB reference's ensemble check, if any
    verdict: list[str] = field(default_factory=list)  # CRMSE against MSE, one fact a line
    caveat: str | None = None  # the preset's: what the numbers are worth


def _find(reg: Registry, base: str) -> list[RunInfo]:
    return [r for r in reg.list_runs() if r.name == base or (r.name or "").startswith(base + "~")]


def _fresh_name(reg: Registry, base: str) -> str:
    taken = {r.name for r in _find(reg, base)}
    if base not in taken:
        return base
    k = 2
    while f"{base}~{k}" in taken:
        k += 1
    return f"{base}~{k}"


def _step(
    reg: Registry,
    base: str,
    *,
    start: Callable[..., str],
    resume: Callable[..., str] | None = None,
    parent: str | None = None,
) -> str:
    """Reuse a completed run named ``base``, resume a resumable one, or start a new one.

    ``parent``: reuse only a completed run of that parent (a sample of another model, from an
    older recipe, is not this step's).
    """
    runs = _find(reg, base)
    done = [r for r in runs if r.status == "completed" and (parent is None or r.parent == parent)]
    if done:
        return str(done[-1].id)
    if resume is not None:
        stopped = [r for r in runs if r.status in ("interrupted", "failed", "running")]
        if stopped and reg.checkpoints(stopped[-1].id):
            return str(resume(stopped[-1].id))
    return str(start(_fresh_name(reg, base)))


def reproduce(
    ws: Workspace,
    molecule: str,
    *,
    preset: str = "quick",
    from_path: Path | None = None,
    n_train: int | None = None,
    seed: int = 0,
    split: str = "01",
    lambda_: float | None = None,
    temperature_K: float | None = None,
    out: Path | None = None,
    registry: Registry | None = None,
    processes: int = 1,
    recipe_name: str = RECIPES[0],
    force_budget: float = FORCE_BUDGET,
) -> ReproduceResult:
    """Run the whole pipeline on one molecule; return run ids, metrics and the report path.

    ``molecule`` is an rMD17 molecule, a name of :data:`XTB_REFERENCES` (generated with
    ``processes`` worker processes when not registered) or any registered dataset. A preset may
    run on its own reference size (:data:`PRESET_DATASETS`: ``aspirin-xtb`` quick) and with its
    molecule's own sizes (:data:`MOLECULE_PRESETS`: aspirin quick). ``recipe_name`` and
    ``force_budget``: the CRMSE arm's recipe (:mod:`crmse_cli.stages.recipe`).
    """
    if preset not in PRESETS:
        shown = ", ".join(k for k, v in PRESETS.items() if not v.hidden)
        raise CrmseError(f"--preset must be one of {shown}, got {preset!r}")
    check_option("--processes", processes)  # before any run, also when no xTB reference is generated
    t0 = time.perf_counter()
    dataset = PRESET_DATASETS.get((molecule, preset), molecule)
    p = preset_for(preset, dataset)
    reg = registry or Registry.open(ws.ensure())
    ensure_dataset(ws, reg, dataset, from_path, processes)
    res_check = reg.get_dataset(dataset).meta.get("ensemble_check")
    res = ReproduceResult(reference_check=res_check)
    sample_cfg = replace(p.sample, seed=seed, temperature_K=temperature_K or p.sample.temperature_K)
    contrastive = replace(
        p.contrastive, seed=seed, lambda_=p.contrastive.lambda_ if lambda_ is None else lambda_
    )

    overrides = dict(p.pretrain, seed=seed) | ({} if n_train is None else {"n_train": n_train})
    pre_cfg = pretrain_stage.preset_config(p.base or preset, overrides=overrides)
    tag = f"repro-{molecule}-{preset}-n{pre_cfg.n_train}-s{seed}"  # the frames it trains on, also by default
    res.runs["pretrain"] = _step(
        reg,
        f"{tag}-pretrain",
        start=lambda name: (
            pretrain_stage.pretrain(ws, dataset=dataset, split=split, config=pre_cfg, name=name).run_id
        ),
        resume=lambda rid: (
            pretrain_stage.pretrain(ws, dataset=dataset, split=split, config=pre_cfg, resume=rid).run_id
        ),
    )
    models = {"MSE": res.runs["pretrain"]}
    arm = recipe(
        recipe_name,
        RegularizeConfig(contrastive=contrastive),
        force_budget=force_budget,
        polish_updates=p.polish_updates,
        polish_every=p.polish_every,
    )
    step_names = {"crmse": "regularize-CRMSE", "polish": "polish-CRMSE"}

    def step(what: str, start: Callable[[str], str], resume: Callable[[str], str], parent: str | None) -> str:
        res.runs[step_names[what]] = _step(reg, f"{tag}-{step_names[what]}", start=start, resume=resume)
        return res.runs[step_names[what]]

    crmse: RecipeRuns = run_recipe(ws, reg, res.runs["pretrain"], arm, step=step, parent=res.runs["pretrain"])
    models["CRMSE"] = crmse.model  # the polished model when the recipe polishes
    variants = [("lambda0", replace(contrastive, lambda_=0.0))] if p.control else []
    for label, ccfg in variants:
        rcfg = RegularizeConfig(contrastive=ccfg)
        models[label] = _step(
            reg,
            f"{tag}-regularize-{label}",
            start=lambda name, rcfg=rcfg: (
                regularize_stage.regularize(ws, res.runs["pretrain"], rcfg, name=name).run_id
            ),
            resume=lambda rid, rcfg=rcfg: regularize_stage.regularize(ws, None, rcfg, resume=rid).run_id,
        )
        res.runs[f"regularize-{label}"] = models[label]
    samples = []
    for label, model_id in models.items():
        sid = _step(
            reg,
            f"{tag}-sample-{label}",
            start=lambda name, m=model_id: sample_stage.sample(ws, m, sample_cfg, name=name).run_id,
            parent=model_id,
        )
        res.runs[f"sample-{label}"] = sid
        eid = _step(
            reg,
            f"{tag}-evaluate-{label}",
            start=lambda name, s=sid: evaluate_stage.evaluate(ws, s, name=name, seed=seed).run_id,
            parent=sid,
        )
        res.runs[f"evaluate-{label}"] = eid
        res.metrics[label] = {k: (m.value, m.unit) for k, m in reg.final_metrics(eid).items()}
        samples.append(sid)
    control = models.get("lambda0")
    res.runs["diagnose-CRMSE"] = _step(
        reg,
        f"{tag}-diagnose-CRMSE",
        start=lambda name: (
            diagnose_stage.diagnose(
                ws, models["CRMSE"], against=models["MSE"], control=control, name=name, registry=reg
            ).run_id
        ),
        parent=models["CRMSE"],
    )
    about = p.caveat or f"{preset}, seed {seed}"
    cmp = compare_stage.compare(ws, samples, out=out, title=f"CRMSE reproduction: {molecule} ({about})")
    res.runs["compare"] = cmp.run_id
    res.report = Path(cmp.path)
    res.verdict, res.caveat = verdict(reg, res.runs), p.caveat
    res.wall_s = time.perf_counter() - t0
    return res


def verdict(reg: Registry, runs: dict[str, str]) -> list[str]:
    """CRMSE against MSE, one fact a line: :func:`crmse_cli.report.verdict.verdict_lines` of the runs."""

    def finals(step: str) -> dict[str, float]:
        return {k: m.value for k, m in reg.final_metrics(runs[step]).items()} if step in runs else {}

    last = "polish-CRMSE" if "polish-CRMSE" in runs else "regularize-CRMSE"
    control = None
    if "sample-lambda0" in runs:
        control = evidence(finals("sample-lambda0"), finals("evaluate-lambda0"))
    return verdict_lines(
        evidence(finals("sample-MSE"), finals("evaluate-MSE")),
        evidence(finals("sample-CRMSE"), finals("evaluate-CRMSE")),
        diagnosis=finals("diagnose-CRMSE") or None,
        budget=finals(last),
        force_budget=configured_budget(reg.get_run(runs[last]).config) if last in runs else None,
        control=control,
    )
