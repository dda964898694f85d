"""`crmse runs`, `crmse show RUN`, `crmse datasets`: what the registry holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.table import Table

from crmse_cli import names
from crmse_cli.cli.common import console, emit_json, err_console, fmt_value, shown, state
from crmse_cli.cli.conventions import choice
from crmse_cli.cli.tables import wrapping_table
from crmse_cli.describe import run_lines
from crmse_cli.registry import compat
from crmse_cli.registry.entities import RUN_KINDS, RunInfo
from crmse_cli.train.budget import budget_summary

if TYPE_CHECKING:
    from crmse_cli.registry.store import Registry

KEY_METRICS = (
    (names.TEST_ENERGY_MAE, "E MAE"),
    (names.TEST_FORCE_MAE, "F MAE"),
    (names.ENERGY_KS, "E KS"),
    (names.HR_MAE, "h(r) MAE"),
    (names.STABLE_FRACTION, "stable"),
    ("val_force_mae", "val F MAE"),
    ("hessian_ratio_soft", "H soft/MSE"),  # diagnose runs
    ("collapse_lift_kT", "lift kT"),
)
STATUS_STYLE = {
    "completed": "green",
    "running": "cyan",
    "failed": "red",
    "interrupted": "yellow",
    "queued": "blue",
}


def _registry(ctx: typer.Context) -> Registry:
    from crmse_cli.registry.store import Registry

    reg = Registry.open(state(ctx).workspace, read_only=True)  # works on a read-only workspace too
    reg.reap_stale()  # runs whose process was killed show as interrupted, not running forever
    return reg


def _e(value: object) -> str:
    """A user-controlled value as literal table text (no markup, control characters escaped)."""
    return shown(value)


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t else ""


def runs_command(
    ctx: typer.Context,
    kind: str | None = choice(RUN_KINDS, help="Only runs of this kind."),
) -> None:
    """List runs: id, name, kind, status, dataset, parent, start time and key metrics."""
    reg = _registry(ctx)
    runs = reg.list_runs(kind=kind)
    finals = {r.id: reg.final_metrics(r.id) for r in runs}
    if state(ctx).json:
        emit_json([{**asdict(r), "metrics": {k: m.value for k, m in finals[r.id].items()}} for r in runs])
        return
    # Narrow terminals (80 columns) drop the dataset, start time and parent columns rather than squeezing
    # every column into a few characters; --json always has everything.
    narrow = console.width < 110
    cols = ["id", "name", "kind", "status", "dataset", "parent", "started", "key metrics"]
    if narrow:
        cols = [c for c in cols if c not in ("dataset", "parent", "started")]
    title = f"runs in {state(ctx).workspace.home}"
    if narrow and runs:
        title += " (widen the terminal for dataset, parent and start time)"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    # Short columns never wrap; a long name folds, but only below 30 characters of width.
    longest = max((len(r.name or "") for r in runs), default=4)
    for col in cols:
        table.add_column(
            col,
            overflow="fold",
            no_wrap=col not in ("name", "key metrics"),
            min_width=min(longest, 30) if col == "name" else None,
        )
    for r in runs:
        m = finals[r.id]
        key = "  ".join(f"{label} {fmt_value(m[name].value)}" for name, label in KEY_METRICS if name in m)
        style = STATUS_STYLE.get(r.status, "")
        cells = {
            "id": r.id,
            "name": _e(r.name or ""),
            "kind": r.kind,
            "status": f"[{style}]{r.status}[/]",
            "dataset": _e(r.dataset or ""),
            "parent": r.parent or "",
            "started": _when(r.started),
            "key metrics": key,
        }
        table.add_row(*(cells[c] for c in cols))
    if runs:
        console.print(table)
    elif kind is not None:
        console.print(f"no {kind} runs yet (`crmse runs` lists all)", highlight=False)
    else:
        console.print("no runs yet: start with `crmse fetch rmd17 ethanol` and `crmse pretrain`")


def lambda_line(run: RunInfo) -> str:
    """The lambda of regularize ``run``: its convention and its weight against the kcal/mol L_MSE."""
    lam = compat.lambda_setting(run.id, run.config)
    loss_units = "eV, eV/Å" if lam.units == "eV" else "kcal/mol, kcal/mol/Å"
    return (
        f"{lam.value:g} ({lam.units} convention: L_MSE in {loss_units}); "
        f"effective weight against the kcal/mol loss {lam.internal:.4g}"
    )


def show_command(
    ctx: typer.Context, run: str = typer.Argument(..., help="Run id (or unique prefix) or name.")
) -> None:
    """Everything about one run: config, final metrics, checkpoints and artifacts."""
    reg = _registry(ctx)
    info = reg.get_run(run)
    finals = reg.final_metrics(info.id)
    ckpts, arts = reg.checkpoints(info.id), reg.artifacts(info.id)
    missing = [
        p for p in dict.fromkeys([c.path for c in ckpts] + [a.path for a in arts]) if not Path(p).exists()
    ]
    if missing:  # on stderr, so it shows with --json too and never mixes into the data
        err_console.print(
            f"[yellow]warning:[/] {len(missing)} file(s) of run {info.id} are missing (deleted or "
            f"moved): {_e(', '.join(missing))}",
            highlight=False,
            soft_wrap=True,
        )
    if state(ctx).json:
        emit_json(
            {
                "run": asdict(info),
                "metrics": {k: asdict(m) for k, m in finals.items()},
                "checkpoints": [asdict(c) for c in ckpts],
                "artifacts": [asdict(a) for a in arts],
                "missing_files": missing,
            }
        )
        return

    head = wrapping_table("field", "value", title=f"run {info.id}")
    head.show_header = False
    for field in (
        "name",
        "kind",
        "status",
        "dataset",
        "parent",
        "seed",
        "version",
        "host",
        "started",
        "ended",
        "error",
    ):
        value = getattr(info, field)
        if value not in (None, ""):
            head.add_row(field, _e(value))
    for label, line in run_lines(info.id, info.kind, info.config, {k: m.value for k, m in finals.items()}):
        head.add_row(label, _e(line))  # frames, a time-budget cut, the units' readings
    if info.kind == "regularize" and "lambda" in info.config:
        head.add_row("lambda", _e(lambda_line(info)))
    budget = budget_summary(info.config, {k: m.value for k, m in finals.items()})
    if info.kind == "regularize" and budget:
        head.add_row("force budget", _e(budget))
    console.print(head)
    cfg = wrapping_table("config", "value", title="config")
    for key, value in _flatten(info.config):
        cfg.add_row(_e(key), _e(value))
    console.print(cfg)
    if finals:
        mt = wrapping_table(
            "metric", "value", "unit", "step", title="metrics (last value)", numbers=("value", "step")
        )
        for name in sorted(finals):
            m = finals[name]
            mt.add_row(_e(name), fmt_value(m.value), _e(m.unit), "" if m.step is None else str(m.step))
        console.print(mt)
    if ckpts:
        ct = wrapping_table("tag", "step", "path", "sha256", title="checkpoints", numbers=("step", "sha256"))
        for c in ckpts:
            ct.add_row(c.tag, str(c.step), _e(c.path) + _gone(c.path, missing), c.sha256[:12])
        console.print(ct)
    if arts:
        at = wrapping_table("kind", "path", "sha256", title="artifacts", numbers=("sha256",))
        for a in arts:
            at.add_row(a.kind, _e(a.path) + _gone(a.path, missing), a.sha256[:12])
        console.print(at)


def _gone(path: str, missing: list[str]) -> str:
    return " [red](missing)[/]" if path in missing else ""


def _flatten(d: Mapping[str, object], prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def datasets_command(ctx: typer.Context) -> None:
    """List registered datasets: frames, atoms, splits, source."""
    reg = _registry(ctx)
    sets = reg.list_datasets()
    if state(ctx).json:
        emit_json([asdict(d) for d in sets])
        return

    columns = ("name", "frames", "atoms", "splits", "source", "path")
    table = wrapping_table(*columns, title="datasets", numbers=("frames", "atoms"))
    for d in sets:
        table.add_row(
            _e(d.name), str(d.n_frames), str(d.n_atoms), _splits(d.splits), _e(d.source), _e(d.path)
        )
    console.print(table if sets else "no datasets yet: `crmse fetch rmd17 ethanol --from rmd17.tar.bz2`")


def _splits(splits: Mapping[str, Mapping[str, int]]) -> str:
    """``5 x 1000/1000`` when every split has the same sizes, else each split listed."""
    sizes = {k: "/".join(str(v) for v in parts.values()) for k, parts in sorted(splits.items())}
    if len(set(sizes.values())) == 1 and len(sizes) > 1:
        return f"{len(sizes)} x {next(iter(sizes.values()))} ({', '.join(sizes)})"
    return ", ".join(f"{k}: {v}" for k, v in sizes.items())


def register(app: typer.Typer) -> None:
    """Add ``runs``, ``show`` and ``datasets`` to ``app``."""
    app.command("runs")(runs_command)
    app.command("show")(show_command)
    app.command("datasets")(datasets_command)
