"""`crmse table`: the study tables of docs/results.md (markdown), from the runs' final metrics.

Columns are runs (any kind; evaluate runs carry the distribution and stability metrics), or
groups of runs (seeds of one setting) shown as mean ± half-range with the replicas that stayed
physical pooled over each group and Fisher's exact test of every group against the first
(:mod:`crmse_cli.analysis.study`).
"""

from __future__ import annotations

from typing import Any

from crmse_cli.analysis.study import groups_table, runs_table
from crmse_cli.errors import CrmseError
from crmse_cli.workspace import Workspace


def parse_group(spec: str) -> tuple[str, list[str]]:
    """``"label=run1,run2"`` -> ``("label", ["run1", "run2"])`` (one-line error otherwise)."""
    label, sep, refs = spec.partition("=")
    runs = [r for r in refs.split(",") if r]
    if not sep or not label or not runs:
        raise CrmseError(f"--group {spec!r}: write LABEL=RUN1,RUN2,... (runs by id or name)")
    return label, runs


def study_table(
    ws: Workspace, runs: list[str], *, groups: list[str] | None = None, registry: Any = None
) -> list[str]:
    """Markdown lines of a table of ``runs`` (columns), or of ``groups`` (``LABEL=RUN,RUN`` specs).

    Raises:
        CrmseError: neither runs nor groups, both, an unknown run or a malformed group.
    """
    from crmse_cli.registry.store import Registry

    if bool(runs) == bool(groups):
        raise CrmseError("give runs, or --group LABEL=RUN,RUN,... options, not both")
    reg = registry or Registry.open(ws)

    def values(ref: str) -> dict[str, float]:
        return {k: m.value for k, m in reg.final_metrics(reg.get_run(ref).id).items()}

    if runs:
        return runs_table({ref: values(ref) for ref in runs})
    parsed = dict(parse_group(g) for g in groups or [])
    return groups_table({label: [values(r) for r in refs] for label, refs in parsed.items()})
