"""`crmse compare`: one interactive, self-contained HTML report of several runs against DFT.

Each named run stands for its samples: a sample run for itself, a pretrain or regularize run for
its latest completed sample run, an evaluate run for the samples it evaluated. Samples that were
never evaluated are evaluated first (an ordinary ``evaluate`` run). The report is written
atomically and registered as the ``report`` artifact of a new ``compare`` run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from crmse_cli import names
from crmse_cli.errors import CrmseError
from crmse_cli.fileio import atomic_path, check_output_path, sha256_file
from crmse_cli.progress import make_progress
from crmse_cli.registry.store import Registry
from crmse_cli.report.collect import Target, check_same_dataset, collect, resolve_target
from crmse_cli.stages._run import tracked
from crmse_cli.workspace import Workspace

HEADLINE = (
    names.TEST_ENERGY_MAE,
    names.TEST_FORCE_MAE,
    names.ENERGY_KS,
    names.HR_MAE,
    names.STABLE_FRACTION,
    names.CONFIG_TEMPERATURE_SAMPLE_K,
    names.CONFIG_TEMPERATURE_REF_K,
)


@dataclass(frozen=True)
class CompareResult:
    """The compare run, the report file, the evaluate runs made on the way and headline metrics."""

    run_id: str
    path: Path
    sample_runs: dict[str, str] = field(default_factory=dict)  # label -> sample run id
    evaluated: list[str] = field(default_factory=list)  # evaluate runs created by this call
    metrics: dict[str, dict[str, tuple[float, str]]] = field(default_factory=dict)  # label -> metrics


def check_writable(out: Path) -> Path:
    """``out`` as an absolute path, or a one-line error if a report cannot be written there."""
    out = Path(out).expanduser().absolute()
    if out.is_dir():
        raise CrmseError(f"--out {out} is a folder; give a file name such as {out / 'report.html'}")
    check_output_path(out)  # a link or a device: refused before any run exists
    if out.exists() and not os.access(out, os.W_OK):
        raise CrmseError(f"--out {out} exists and is not writable; choose another path")
    folder = out.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise CrmseError(f"--out {out}: {folder} is a file, not a folder; choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CrmseError(f"--out {out}: folder {folder} is not writable; choose another path")
    return out


def compare(
    ws: Workspace,
    runs: list[str],
    *,
    out: Path | None = None,
    title: str | None = None,
    registry: Registry | None = None,
    progress: bool = True,
) -> CompareResult:
    """Write the comparison report of ``runs`` (ids or names) and register a ``compare`` run.

    Args:
        ws: the workspace.
        runs: pretrain, regularize, sample or evaluate runs (id prefix or name), all of one dataset.
        out: the HTML file to write; default ``<compare run folder>/report.html``.
        title: the page title; default the dataset and the run labels.
        registry: an open Registry (default: ``Registry.open(ws)``).
        progress: show a progress bar on stderr.

    Raises:
        CrmseError: an unknown run, a run without samples, runs of different datasets or an
            unwritable ``out`` (all checked before any evaluation runs).
    """
    if not runs:
        raise CrmseError("name at least one run to compare (see `crmse runs`)")
    reg = registry or Registry.open(ws.ensure())
    targets, seen = [], set()
    for ref in runs:
        t = resolve_target(reg, ref)
        if t.sample.id not in seen:  # the same samples named twice are drawn once
            seen.add(t.sample.id)
            targets.append(t)
    dataset = check_same_dataset(targets)
    path = check_writable(out) if out is not None else None
    run = reg.create_run(
        kind="compare",
        dataset=dataset,
        config={
            "dataset": dataset,
            "runs": list(runs),
            "sample_runs": [t.sample.id for t in targets],
            "title": title,
            "out": str(path) if path else None,
        },
        seed=None,
    )
    with tracked(reg, run.id):
        return _compare_run(ws, reg, run.id, targets, path, title, progress)


def _compare_run(
    ws: Workspace,
    reg: Registry,
    run_id: str,
    targets: list[Target],
    path: Path | None,
    title: str | None,
    progress: bool,
) -> CompareResult:
    from dataclasses import replace

    from crmse_cli.report.figures import build_figures  # deferred: plotly, only to draw a page
    from crmse_cli.report.html import render

    evaluated = []
    for i, t in enumerate(targets):
        if t.evaluate is None:
            from crmse_cli.stages.evaluate import evaluate  # torch: only when something needs evaluating

            res = evaluate(ws, t.sample.id, registry=reg)
            targets[i] = replace(t, evaluate=reg.get_run(res.run_id))
            evaluated.append(res.run_id)
    bar = make_progress()
    bar.disable = bar.disable or not progress
    with bar:
        task = bar.add_task("compare", total=3, info="collect")
        report = collect(reg, targets, title=title)
        bar.update(task, advance=1, info="figures")
        page = render(report, build_figures(report))
        bar.update(task, advance=1, info="write")
        path = path or ws.run_dir(run_id) / "report.html"
        with atomic_path(path) as tmp:
            tmp.write_text(page, encoding="utf-8")
        bar.update(task, advance=1, info=str(path))
    reg.add_artifact(
        run_id,
        kind=names.ARTIFACT_REPORT,
        path=str(path),
        sha256=sha256_file(path),
        meta={"sample_runs": [t.sample.id for t in targets], "bytes": path.stat().st_size},
    )
    metrics = {
        r.label: {k: v for k in HEADLINE if (v := (r.model_metrics.get(k) or r.metrics.get(k))) is not None}
        for r in report.runs
    }
    return CompareResult(
        run_id=run_id,
        path=path,
        sample_runs={r.label: r.target.sample.id for r in report.runs},
        evaluated=evaluated,
        metrics=metrics,
    )
