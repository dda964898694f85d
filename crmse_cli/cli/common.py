"""State shared by all commands: workspace, output mode, debug flag, thread count."""

from __future__ import annotations

import json
import os
import sys
import webbrowser
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from crmse_cli.cli.conventions import DEVICE_CHOICES, choice
from crmse_cli.text import visible
from crmse_cli.workspace import Workspace

console = Console()
err_console = Console(stderr=True)

DeviceOption = Annotated[
    str, choice(DEVICE_CHOICES, help="cpu, cuda (the current GPU) or cuda:N (GPU N).", annotated=True)
]
"""``--device`` of the commands that run a model: ``device: DeviceOption = "cpu"``."""
RunNameOption = Annotated[str | None, typer.Option(help="A unique name for the run.")]
"""``--name`` of the run a command creates: ``name: RunNameOption = None``."""
OpenOption = Annotated[bool, typer.Option("--open", help="Open the report in the desktop browser when done.")]
"""``--open`` of the commands that write an HTML report: ``open_: OpenOption = False``."""
TrustCodeOption = Annotated[
    bool,
    typer.Option(
        "--trust-code",
        help="Load models stored as code (MACE .model files, checkpoints of MACE or of your own "
        "module: pickles, which run code when loaded) from files crmse did not write in this "
        "workspace. Only for files whose origin you trust.",
    ),
]
"""``--trust-code`` of every command that loads a model (docs/architecture.md, "Trust model")."""

CompileOption = Annotated[
    bool | None,
    typer.Option(
        "--compile/--no-compile",
        help="Forces through torch.compile (inductor), compiled kernels cached in the workspace; "
        "falls back to eager with one line when compilation fails. Default: off (README).",
        show_default=False,
    ),
]
"""``--compile/--no-compile`` of the commands that sample: ``compile_: CompileOption = None``."""

DEFAULT_THREADS = 1
"""Default torch thread count. 1 is safe on shared machines (2 OpenMP threads slow torch
10-100x when another process loads a 2-core machine); raise it with ``--threads`` on a
dedicated workstation."""


@dataclass
class AppState:
    """The global options, shared with every command through ``ctx.obj``."""

    workspace: Workspace
    json: bool = False
    debug: bool = False
    threads: int = DEFAULT_THREADS


def workspace(app_state: AppState, *, trust_code: bool = False, compile_: bool | None = None) -> Workspace:
    """The command's workspace; with ``trust_code`` (``--trust-code``) pickled models may load.

    ``compile_``: ``--compile/--no-compile`` (None: the workspace's default).
    """
    ws = replace(app_state.workspace, trust_code=True) if trust_code else app_state.workspace
    return ws if compile_ is None else replace(ws, compile_forces=compile_)


def state(ctx: typer.Context) -> AppState:
    """The :class:`AppState` set up by the top-level callback."""
    obj = ctx.find_root().obj
    if not isinstance(obj, AppState):  # pragma: no cover - only when a command runs standalone
        obj = AppState(workspace=Workspace.resolve(None))
        ctx.find_root().obj = obj
    return obj


def shown(value: object) -> str:
    r"""A user-controlled value (a name, path, error) as literal terminal text.

    Rich markup is escaped (``[red]x`` prints as is) and control characters are written as
    escapes (``\x1b``: :func:`crmse_cli.text.visible`), so a name from a shared registry can
    neither colour the terminal nor split a table row.
    """
    return escape(visible(str(value)))


def set_threads(n: int) -> None:
    """Set torch's intra-op thread count (imported lazily: ``cli`` itself never needs torch)."""
    import torch

    torch.set_num_threads(max(1, n))


def emit_json(data: object) -> None:
    """Print machine-readable output on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def fmt_value(value: float) -> str:
    """Compact number for tables: 4 significant digits, plain for moderate magnitudes.

    Large magnitudes (total energies, ~1e5 kcal/mol) keep two decimals, so differences between
    runs stay visible.
    """
    if value != value:  # NaN
        return "n/a"
    if float(value).is_integer() and abs(value) < 1e7:  # counts: frames, replicas, steps
        return str(int(value))
    if value == 0 or 1e-3 <= abs(value) < 1e3:
        return f"{value:.4g}"
    if 1e3 <= abs(value) < 1e7:
        return f"{value:.2f}"
    return f"{value:.3e}"


def print_metrics(
    title: str, metrics: dict[str, tuple[float, str]], *, extra: dict[str, object] | None = None
) -> None:
    """Print ``name -> (value, unit)`` as a rich table (or JSON with the global ``--json``)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for name, (value, unit) in metrics.items():
        table.add_row(shown(name), fmt_value(float(value)), shown(unit))
    console.print(table)
    for key, val in (extra or {}).items():
        console.print(f"{key}: {shown(val)}", highlight=False)


def emit_result(
    app_state: AppState, title: str, metrics: dict[str, tuple[float, str]], **fields: object
) -> None:
    """The one way commands print their result: JSON with ``--json``, else a table."""
    if app_state.json:
        emit_json({**fields, "metrics": {k: {"value": v, "unit": u} for k, (v, u) in metrics.items()}})
    else:
        print_metrics(title, metrics, extra=fields)


def open_report(path: str | Path) -> None:
    """Open an HTML report in the desktop's browser, or say where it is when there is no desktop.

    Console browsers are never started (they would take over the terminal): on Linux a browser
    opens only when a display is set.
    """
    uri = Path(path).resolve().as_uri()
    desktop = sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    if desktop:
        try:
            if webbrowser.open(uri):
                console.print(f"opened {uri}", highlight=False, soft_wrap=True)
                return
        except webbrowser.Error:
            pass
    console.print(
        f"no desktop browser here: open {uri} in a browser (the file works offline)",
        highlight=False,
        soft_wrap=True,
    )
