"""`crmse compare`: an interactive, self-contained HTML report of several runs against DFT."""

from __future__ import annotations

from pathlib import Path

import typer

from crmse_cli.cli.common import (
    OpenOption,
    TrustCodeOption,
    console,
    emit_json,
    open_report,
    set_threads,
    shown,
    state,
    workspace,
)
from crmse_cli.cli.tables import metrics_tables


def compare_command(
    ctx: typer.Context,
    runs: list[str] = typer.Argument(
        ..., help="Pretrain, regularize, sample or evaluate runs (id or name), all of one dataset."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="HTML file to write (default: the compare run's folder, report.html)."
    ),
    title: str | None = typer.Option(None, "--title", help="Page title (default: dataset and run names)."),
    open_: OpenOption = False,
    trust_code: TrustCodeOption = False,
) -> None:
    """Compare runs with the DFT reference in one offline HTML page (energies, h(r), dihedrals, stability)."""
    from crmse_cli.stages.compare import compare

    st = state(ctx)
    set_threads(st.threads)
    res = compare(workspace(st, trust_code=trust_code), runs, out=out, title=title, progress=not st.json)
    if st.json:
        emit_json(
            {
                "run_id": res.run_id,
                "report": str(res.path),
                "sample_runs": res.sample_runs,
                "evaluated": res.evaluated,
                "metrics": {
                    label: {k: {"value": v, "unit": u} for k, (v, u) in m.items()}
                    for label, m in res.metrics.items()
                },
            }
        )
        return

    names = list(dict.fromkeys(k for m in res.metrics.values() for k in m))
    for table in metrics_tables(f"compare run {res.run_id}", res.metrics, names, width=console.width):
        console.print(table)
    if res.evaluated:
        console.print(f"evaluated now: {shown(', '.join(res.evaluated))}", highlight=False)
    console.print(f"report: {shown(res.path)}", highlight=False, soft_wrap=True)
    if open_:
        open_report(res.path)


def register(app: typer.Typer) -> None:
    """Add this module's command to ``app``."""
    app.command("compare")(compare_command)
