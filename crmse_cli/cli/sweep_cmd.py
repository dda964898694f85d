"""`crmse sweep create|work|status|report|list`: a lambda x seed grid drained by any number of workers."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import typer
from rich import box
from rich.table import Table

from crmse_cli.cli.common import (
    TrustCodeOption,
    console,
    emit_json,
    open_report,
    set_threads,
    shown,
    state,
    workspace,
)
from crmse_cli.cli.conventions import DEVICE_CHOICES, choice
from crmse_cli.errors import CrmseError

sweep_app = typer.Typer(
    help="Sweeps: queue a lambda x seed grid of CRMSE runs, drain it with workers, report the plateau.",
    no_args_is_help=True,
)


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise CrmseError(f"{option} takes comma-separated numbers, e.g. 0,1e-3,0.015; got {text!r}") from exc


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise CrmseError(f"{option} takes comma-separated integers, e.g. 0,1,2; got {text!r}") from exc


def parse_settings(items: list[str], option: str) -> dict[str, object]:
    """``KEY=VALUE`` pairs; VALUE is read as JSON (numbers, true, null, ...) or else as text."""
    out: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise CrmseError(f"{option} takes KEY=VALUE (e.g. n_updates=50); got {item!r}")
        try:
            value: object = json.loads(raw)
        except ValueError:
            value = raw
        out[key.strip().replace("-", "_")] = value
    return out


@sweep_app.command("create")
def create_command(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="Unique sweep name; runs are named NAME.SOURCE.lamL.sS."),
    source: list[str] = typer.Option(
        ..., "--from", help="Model runs (pretrain or regularize), comma-separated or repeated."
    ),
    lambdas: str = typer.Option(
        ..., "--lambda", help="Comma-separated lambdas, e.g. 0,1e-4,1e-3,0.015,0.1,1."
    ),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds, e.g. 0,1,2."),
    settings: list[str] = typer.Option(
        [],
        "--set",
        help="A regularize setting KEY=VALUE, any key of its config file's \\[contrastive], \\[budget] "
        "or \\[regularize] table (n_updates=50, lr=1e-4, n_chains=64, val_every=10, ...). Repeat for more.",
    ),
    sample_settings: list[str] = typer.Option(
        [],
        "--sample-set",
        help="A sample setting KEY=VALUE, any key of its \\[sample] table (integrator=ula, ...).",
    ),
    sample_replicas: int | None = typer.Option(None, "--sample-replicas", help="Replicas sampled per model."),
    sample_steps: int | None = typer.Option(None, "--sample-steps", help="Sampler steps per model."),
    sample_temperature_K: float | None = typer.Option(
        None, "--sample-temperature-K", help="Sampling temperature in K."
    ),
    device: str = choice(DEVICE_CHOICES, default="cpu", help="cpu, cuda or cuda:N, for every stage."),
) -> None:
    """Queue one regularize run (then sample and evaluate) per (model, lambda, seed); nothing runs yet."""
    from crmse_cli.stages.sweep import create_sweep

    st = state(ctx)
    sample_opts = parse_settings(sample_settings, "--sample-set")
    given = {"replicas": sample_replicas, "steps": sample_steps, "temperature_K": sample_temperature_K}
    sample_opts.update({k: v for k, v in given.items() if v is not None})
    res = create_sweep(
        st.workspace,
        name,
        sources=[s.strip() for item in source for s in item.split(",") if s.strip()],
        lambdas=_floats(lambdas, "--lambda"),
        seeds=_ints(seeds, "--seeds"),
        regularize_options=parse_settings(settings, "--set"),
        sample_options=sample_opts,
        device=device,
    )
    if st.json:
        emit_json(asdict(res))
        return
    console.print(
        f"sweep {shown(res.name)}: {len(res.run_ids)} runs queued; drain it with "
        f"`crmse sweep work {shown(res.name)}` (any number of workers)",
        highlight=False,
        soft_wrap=True,
    )


@sweep_app.command("work")
def work_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The sweep to drain."),
    max_runs: int | None = typer.Option(None, "--max-runs", min=1, help="Stop after this many grid points."),
    stale_after_s: float = typer.Option(
        600.0,
        "--stale-after-s",
        help="Re-queue a job whose worker on another host sent no heartbeat for this long (s; more than "
        "2 heartbeats of 30 s). A job of this host is re-queued once its worker's process is gone.",
    ),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Re-queue failed runs first (after a fix)."
    ),
    trust_code: TrustCodeOption = False,
) -> None:
    """Claim queued runs of the sweep one by one, run regularize + sample + evaluate, until none is left."""
    from crmse_cli.stages.sweep import work

    st = state(ctx)
    set_threads(st.threads)
    ws = workspace(st, trust_code=trust_code)
    res = work(ws, name, max_jobs=max_runs, stale_after_s=stale_after_s, retry_failed=retry_failed)
    if st.json:
        emit_json(asdict(res))
        return
    console.print(
        f"sweep {shown(name)}: this worker finished {len(res.done)} runs, {len(res.failed)} failed, "
        f"re-queued {len(res.requeued)} of dead workers; see `crmse sweep status {shown(name)}`",
        highlight=False,
        soft_wrap=True,
    )


@sweep_app.command("status")
def status_command(ctx: typer.Context, name: str = typer.Argument(..., help="The sweep.")) -> None:
    """One line per grid point: state, stage, runs, worker, attempts and the last error."""
    from crmse_cli.stages.sweep_status import sweep_status

    st = state(ctx)
    rows = sweep_status(st.workspace, name)
    if st.json:
        emit_json([asdict(r) for r in rows])
        return
    counts = Counter(r.state for r in rows)
    title = f"sweep {name}: " + ", ".join(f"{counts[s]} {s}" for s in ("done", "running", "queued", "failed"))
    columns: tuple[str, ...] = ("#", "run", "λ", "seed", "state", "stage", "status", "tries", "worker")
    columns += ("error",)
    if console.width < 110:  # narrow terminals: the run's name gets the room (--json has everything)
        columns = tuple(c for c in columns if c not in ("stage", "status", "worker"))
        title += " (widen the terminal for stage, run status and worker)"
    table = Table(title=shown(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    cells = [
        {
            "#": str(r.position), "run": shown(r.run_name or r.run_id), "λ": f"{r.lambda_:g}",
            "seed": str(r.seed), "state": r.state, "stage": r.stage, "status": r.run_status,
            "tries": str(r.attempts), "worker": shown(r.owner or ""), "error": shown(r.error or ""),
        }
        for r in rows
    ]  # fmt: skip
    for col in columns:
        # Names and errors wrap; a number or a state keeps its whole width, never folded.
        whole = col not in ("run", "worker", "error")
        least = max((len(row[col]) for row in cells), default=1) if whole else None
        table.add_column(col, overflow="fold", no_wrap=whole, min_width=least)
    for row in cells:
        table.add_row(*(row[c] for c in columns))
    console.print(table)


@sweep_app.command("report")
def report_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The sweep."),
    out: Path = typer.Option(Path("sweep.html"), "--out", "-o", help="HTML file to write."),
    markdown: bool = typer.Option(False, "--markdown", help="Also print the table as markdown."),
    open_: bool = typer.Option(False, "--open", help="Open the page in the desktop browser."),
) -> None:
    """Every metric against lambda (log axis; lambda = 0 apart), mean and seed spread, in one HTML page."""
    from crmse_cli.stages.sweep_status import write_report

    st = state(ctx)
    path, table = write_report(st.workspace, name, out)
    if st.json:
        emit_json({"report": str(path), "markdown": table})
        return
    if markdown:
        console.print("\n".join(shown(line) for line in table.splitlines()), highlight=False, soft_wrap=True)
    console.print(f"report: {shown(path)}", highlight=False, soft_wrap=True)
    if open_:
        open_report(path)


@sweep_app.command("list")
def list_command(ctx: typer.Context) -> None:
    """Sweeps of the registry with how many grid points are done."""
    from crmse_cli.stages.sweep_status import list_sweeps

    st = state(ctx)
    data = list_sweeps(st.workspace)
    if st.json:
        emit_json([asdict(d) for d in data])
        return
    table = Table(title="sweeps", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("name", "created", "done", "running", "queued", "failed"):
        table.add_column(col)
    for d in data:
        table.add_row(*(shown(str(v)) for v in (d.name, d.created, d.done, d.running, d.queued, d.failed)))
    console.print(table if data else "no sweeps yet: `crmse sweep create --help`")


def register(app: typer.Typer) -> None:
    """Add the ``sweep`` command group to ``app``."""
    app.add_typer(sweep_app, name="sweep")
