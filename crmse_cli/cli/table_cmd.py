"""`crmse table`: a markdown table of runs' metrics, or of seed groups with pooled Fisher tests."""

from __future__ import annotations

from pathlib import Path

import typer

from crmse_cli.cli.common import emit_json, state
from crmse_cli.text import visible


def table_command(
    ctx: typer.Context,
    runs: list[str] | None = typer.Argument(None, help="Runs (evaluate runs, usually) as columns."),
    group: list[str] | None = typer.Option(
        None,
        "--group",
        "-g",
        help="LABEL=RUN1,RUN2,... : a column of the mean ± half-range over the runs (seeds), runs after the "
        "last =; repeatable. "
        "Adds the replicas that stayed physical pooled per group, Fisher's test against the first group.",
    ),
    include: list[Path] | None = typer.Option(
        None,
        "--include",
        help="A metrics export (from --export) whose runs count as registered, by name or id; repeatable.",
    ),
    export: Path | None = typer.Option(
        None,
        "--export",
        help="Also write every run of the table (final metrics with units, config) to this JSON file.",
    ),
) -> None:
    """Print the study table (markdown) of runs or of groups of runs, from their final metrics."""
    from crmse_cli.stages.table import study_table

    st = state(ctx)
    lines = study_table(st.workspace, runs or [], groups=group or None, include=include, export=export)
    if st.json:
        emit_json({"markdown": "\n".join(lines)})
    else:
        typer.echo("\n".join(visible(line) for line in lines))  # names may come from others' rows


def register(app: typer.Typer) -> None:
    """Add this module's command to ``app``."""
    app.command("table")(table_command)
