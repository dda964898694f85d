"""`crmse table`: the study tables of docs/results.md (markdown), from the runs' final metrics.

Columns are runs (any kind; evaluate runs carry the distribution and stability metrics), or
groups of runs (seeds of one setting) shown as mean ± half-range with the replicas that stayed
physical pooled over each group and Fisher's exact test of every group against the first
(:mod:`crmse_cli.analysis.study`). Seeds are the unit of evidence, so beside the pooled test a
group table shows per seed the replicas that left, the odds ratio and Fisher's p against the
first group's same seed, and the Cochran-Mantel-Haenszel test stratified by seed with the
Breslow-Day-Tarone heterogeneity p (:mod:`crmse_cli.analysis.strata`): list every group's runs
in the same seed order.

A study outlives the workspace it ran in only through what is committed: ``--export FILE`` writes
the final metrics (with units), kind, dataset, seed and config of every run in the table to one
JSON file, and ``--include FILE`` makes the runs of such files usable by name or id beside the
registry's, so a later session can add seeds to a table whose first runs are gone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

from crmse_cli.analysis.study import groups_table, runs_table
from crmse_cli.config import JsonDict
from crmse_cli.errors import CrmseError, DataError, NotFoundError, UsageError
from crmse_cli.fileio import atomic_path
from crmse_cli.registry.store import Registry
from crmse_cli.workspace import Workspace

EXPORT_FORMAT = "crmse-metrics/1"
"""The ``format`` field of a metrics export (``--export``)."""


def parse_group(spec: str) -> tuple[str, list[str]]:
    """``"label=run1,run2"`` -> ``("label", ["run1", "run2"])`` (one-line error otherwise).

    The runs follow the last ``=``, so a label may hold one (``"λ = 0=run1,run2"``).
    """
    label, sep, refs = spec.rpartition("=")
    runs = [r for r in refs.split(",") if r]
    if not sep or not label or not runs:
        raise CrmseError(f"--group {spec!r}: write LABEL=RUN1,RUN2,... (runs by id or name)")
    return label, runs


def load_exports(paths: list[Path]) -> dict[str, JsonDict]:
    """The runs of metrics exports, by name and by id (one-line DataError on a bad file)."""
    found: dict[str, JsonDict] = {}
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"--include {path}: cannot read a metrics export ({exc})") from exc
        runs = doc.get("runs") if isinstance(doc, dict) else None
        if not isinstance(runs, list) or doc.get("format") != EXPORT_FORMAT:
            raise DataError(f"--include {path}: not a crmse metrics export (format {EXPORT_FORMAT})")
        for rec in runs:
            _check_record(path, rec)
            for key in (rec.get("id"), rec.get("name")):
                if key:
                    found[str(key)] = rec
    return found


def _check_record(path: Path, rec: object) -> None:
    """A one-line DataError unless ``rec`` is a run of an export: an id, and [number, unit] metrics."""
    if not isinstance(rec, dict) or not isinstance(rec.get("metrics"), dict):
        raise DataError(f"--include {path}: a run without metrics")
    run_id = rec.get("id")
    if not isinstance(run_id, str) or not run_id:
        raise DataError(
            f"--include {path}: a run without an id (name {rec.get('name')!r}); export it again "
            "with `crmse table --export`"
        )
    for key, pair in rec["metrics"].items():
        number = isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], int | float)
        if not number or isinstance(pair[0], bool):
            raise DataError(
                f"--include {path}: metric {key!r} of run {run_id} is {pair!r}, not [number, unit]; "
                "export it again with `crmse table --export`"
            )


def _record(reg: Registry, ref: str) -> dict[str, object]:
    run = reg.get_run(ref)
    return {
        "id": run.id,
        "name": run.name,
        "kind": run.kind,
        "status": run.status,
        "dataset": run.dataset,
        "parent": run.parent,
        "seed": run.seed,
        "version": run.version,
        "config": run.config,
        "metrics": {k: [m.value, m.unit] for k, m in reg.final_metrics(run.id).items()},
    }


def study_table(
    ws: Workspace,
    runs: list[str],
    *,
    groups: list[str] | None = None,
    registry: Registry | None = None,
    include: list[Path] | None = None,
    export: Path | None = None,
) -> list[str]:
    """Markdown lines of a table of ``runs`` (columns), or of ``groups`` (``LABEL=RUN,RUN`` specs).

    Args:
        ws: the workspace whose registry holds the runs.
        runs: run ids or names, one column each.
        groups: ``LABEL=RUN,RUN`` specs, one column each (instead of ``runs``).
        registry: an open registry to use instead of opening ``ws``'s.
        include: metrics exports whose runs are found by name or id before the registry's.
        export: write every run of the table to this metrics export (JSON, atomically).

    Raises:
        CrmseError: neither runs nor groups, both, an unknown run or a malformed group.
    """
    if bool(runs) == bool(groups):
        raise UsageError("give runs, or --group LABEL=RUN,RUN,... options, not both")
    exported = load_exports(include or [])
    reg = registry
    records: dict[str, dict[str, object]] = {}

    def values(ref: str) -> dict[str, float]:
        nonlocal reg
        if ref in exported:
            rec = exported[ref]
        else:
            if reg is None:
                reg = Registry.open(ws, read_only=True)  # only reads: a read-only workspace too
            try:
                rec = _record(reg, ref)
            except NotFoundError as exc:
                where = f" or in {', '.join(map(str, include))}" if include else ""
                raise NotFoundError(f"run {ref!r} is not in the registry{where}") from exc
        records[rec["id"]] = rec
        return {k: float(v[0]) for k, v in rec["metrics"].items()}

    lines = _table(values, runs, groups)
    if export is not None:
        doc = {"format": EXPORT_FORMAT, "runs": list(records.values())}
        text = json.dumps(doc, indent=1, sort_keys=True, default=str).encode()
        try:
            with atomic_path(export) as tmp:
                tmp.write_bytes(text)
        except OSError as exc:
            raise CrmseError(f"--export {export}: cannot write it ({exc.strerror or exc})") from exc
    return lines


def _table(
    values: Callable[[str], Mapping[str, float]], runs: list[str], groups: list[str] | None
) -> list[str]:
    if runs:
        return runs_table({ref: values(ref) for ref in runs})
    parsed = dict(parse_group(g) for g in groups or [])
    return groups_table({label: [values(r) for r in refs] for label, refs in parsed.items()})
