"""State shared by all commands: workspace, output mode, debug flag, thread count."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console

from crmse_cli.workspace import Workspace

console = Console()
err_console = Console(stderr=True)

DEFAULT_THREADS = 1
"""Default torch thread count. 1 is safe on shared machines (2 OpenMP threads slow torch
10-100x when another process loads a 2-core machine); raise it with ``--threads`` on a
dedicated workstation."""


@dataclass
class AppState:
    workspace: Workspace
    json: bool = False
    debug: bool = False
    threads: int = DEFAULT_THREADS


def state(ctx: typer.Context) -> AppState:
    """The :class:`AppState` set up by the top-level callback."""
    obj = ctx.find_root().obj
    if not isinstance(obj, AppState):  # pragma: no cover - only when a command runs standalone
        obj = AppState(workspace=Workspace.resolve(None))
        ctx.find_root().obj = obj
    return obj


def set_threads(n: int) -> None:
    """Set torch's intra-op thread count (imported lazily: ``cli`` itself never needs torch)."""
    import torch

    torch.set_num_threads(max(1, n))


def emit_json(data: Any) -> None:
    """Print machine-readable output on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
