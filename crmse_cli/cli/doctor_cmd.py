"""`crmse doctor`: check the registry database and every registered file; changes nothing."""

from __future__ import annotations

from dataclasses import asdict

import typer
from rich.table import Table

from crmse_cli.cli.common import console, emit_json, shown, state


def doctor_command(ctx: typer.Context) -> None:
    """Check the workspace: database integrity, files against their checksums, stale runs."""
    from crmse_cli.stages.doctor import doctor

    st = state(ctx)
    report = doctor(st.workspace)
    if st.json:
        emit_json({"ok": report.ok, **asdict(report)})
    elif not report.findings:
        console.print(
            f"{shown(str(report.home))}: registry sound, {report.runs} runs, "
            f"{report.files} files match their checksums",
            highlight=False,
            soft_wrap=True,
        )
    else:
        table = Table(
            "level", "what", "problem", title=f"doctor: {shown(report.database)}", title_justify="left"
        )
        for f in report.findings:
            style = "red" if f.level == "error" else "yellow"
            table.add_row(f"[{style}]{f.level}[/]", shown(f.subject), shown(f.message))
        console.print(table)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``crmse doctor`` to ``app``."""
    app.command("doctor")(doctor_command)
