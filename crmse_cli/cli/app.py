"""Entry point of the ``crmse`` command."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import typer

from crmse_cli import __version__
from crmse_cli.cli.common import DEFAULT_THREADS, AppState, err_console, shown
from crmse_cli.cli.conventions import use_click_metavars
from crmse_cli.errors import CrmseError, interrupt_in
from crmse_cli.fileio import disk_full
from crmse_cli.text import visible
from crmse_cli.workspace import Workspace

app = typer.Typer(
    name="crmse",
    help="Train ML interatomic potentials that sample the right distribution (CRMSE).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
use_click_metavars()  # `--json`, not `--json <bool>`: click's value names in every --help


def _version(value: bool) -> None:
    if value:
        typer.echo(f"crmse {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    home: Path | None = typer.Option(
        None,
        "--home",
        envvar="CRMSE_HOME",
        help="Workspace folder (database, data cache, runs). Default: $XDG_DATA_HOME/crmse, "
        "i.e. ~/.local/share/crmse.",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print data as JSON instead of tables."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    threads: int = typer.Option(
        DEFAULT_THREADS,
        "--threads",
        envvar="CRMSE_THREADS",
        min=1,
        help="Torch CPU threads (default 1: safe on shared machines).",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Global options: resolve the workspace and keep the options for the command."""
    ctx.obj = AppState(workspace=Workspace.resolve(home), json=json_output, debug=debug, threads=threads)


# Each module defines ``register(app)``; a command is listed here only once it works.
COMMAND_MODULES = (
    "registry_cmds",  # runs, show, datasets
    "fetch_cmd",  # fetch rmd17 / fetch xyz
    "pretrain_cmd",
    "sample_cmd",
    "evaluate_cmd",
    "regularize_cmd",
    "compare_cmd",
    "reproduce_cmd",
    "diagnose_cmd",
    "table_cmd",
    "sweep_cmd",  # sweep create / work / status / report / list
    "mace_cmd",  # mace import / mace export
    "stabilize_cmd",
    "doctor_cmd",
)


def _register() -> None:
    """Attach every command module to the app, once.

    ``main()`` calls it on every run; in one process (tests, a library user calling ``main()``
    again) a second pass would add every command once more, and each run would build a larger
    click group than the last.
    """
    import importlib
    import importlib.util

    if app.registered_commands or app.registered_groups:
        return
    for name in COMMAND_MODULES:
        module = f"crmse_cli.cli.{name}"
        if importlib.util.find_spec(module) is not None:  # a command appears once it exists
            importlib.import_module(module).register(app)


GLOBAL_FLAGS = ("--json", "--debug")
"""Global flags that may also be written after the command (``crmse runs --json``)."""


def _hoist_global_flags(argv: list[str]) -> list[str]:
    """Move global flags given after the command to the front, where the app's callback reads them.

    Stops at ``--`` (what follows belongs to the command verbatim).
    """
    head, rest = argv[:1], argv[1:]
    end = rest.index("--") if "--" in rest else len(rest)
    flags = [a for a in rest[:end] if a in GLOBAL_FLAGS]
    kept = [a for a in rest[:end] if a not in GLOBAL_FLAGS]
    return head + flags + kept + rest[end:]


def _interrupted_line(exc: BaseException) -> str:
    interrupt = interrupt_in(exc)
    message = getattr(interrupt, "crmse_message", None)
    return f"interrupted: {message}" if message else "interrupted"


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM ends a command like Ctrl-C: the run is closed as ``interrupted``, work kept."""
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry: domain errors become one line and a non-zero exit."""
    import signal

    sys.argv = _hoist_global_flags(sys.argv)
    debug = "--debug" in sys.argv
    _register()
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app(standalone_mode=True)
    except SystemExit as exc:
        if exc.code == 130:  # Typer swallowed a KeyboardInterrupt: say which run and what next
            err_console.print(f"[yellow]{shown(_interrupted_line(exc))}[/]", highlight=False, soft_wrap=True)
        raise
    except CrmseError as exc:
        if debug:
            raise
        # shown: messages hold paths and names, which rich would read as markup ("[/]" crashed)
        err_console.print(f"[bold red]error:[/] {shown(exc)}", highlight=False, soft_wrap=True)
        _tell_torchrun(f"error: {visible(str(exc))}")  # torchrun prints it: no raw control characters
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:
        err_console.print(f"[yellow]{shown(_interrupted_line(exc))}[/]", highlight=False, soft_wrap=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last line of defence for users
        if interrupt_in(exc) is not None:  # a stop that a library's cleanup turned into its own error
            err_console.print(f"[yellow]{shown(_interrupted_line(exc))}[/]", highlight=False, soft_wrap=True)
            sys.exit(130)
        if debug:
            raise
        full = disk_full(exc)  # a write no stage named (a folder, a small file): still one line
        if full is not None:
            err_console.print(f"[bold red]error:[/] {shown(full)}", highlight=False, soft_wrap=True)
            sys.exit(full.exit_code)
        if _out_of_memory(exc):
            err_console.print(
                f"[bold red]error:[/] out of memory ({shown(_first_line(exc))}); use fewer "
                "--replicas / --chains or a smaller --batch-size",
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(1)
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {shown(_first_line(exc))} "
            "(rerun with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)


def _tell_torchrun(line: str) -> None:
    """Under torchrun, leave crmse's error ``line`` where torchrun's failure summary shows it.

    torchrun names a reply file per worker (``TORCHELASTIC_ERROR_FILE``); when a worker exits
    non-zero, the summary under torchrun's own traceback shows the file's message as the
    failure's "traceback" instead of a link to torch's docs. Best effort: nothing else depends on it.
    """
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"message": line, "timestamp": int(time.time())}, fh)
    except OSError:
        pass


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (C++ errors append a stack of many lines)."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure (Python's, torch's CPU or CUDA allocator)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


if __name__ == "__main__":
    main()
