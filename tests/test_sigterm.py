"""SIGTERM is Ctrl-C outside torchrun (issue 28 #6).

A single-process ``regularize`` used to take torchrun's SIGTERM handler: the run ended ``failed``
("another process of the run failed?") with no resume hint, and under ``sweep work`` the
SystemExit escaped the worker's loop and left the job ``running`` under a dead pid.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
from synthetic import cli_main, make_workspace, tiny_pretrain

from crmse_cli.registry.store import Registry
from crmse_cli.workspace import Workspace

TINY_CRMSE = [
    "--chains",
    "2",
    "--steps-per-update",
    "2",
    "--updates",
    "3",
    "--batch-size",
    "4",
    "--warmup",
    "1",
]


@pytest.fixture
def ws(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.delenv("CRMSE_DB_URL", raising=False)
    monkeypatch.setenv("CRMSE_NO_PROGRESS", "1")
    ws = make_workspace(tmp_path / "home")
    tiny_pretrain(ws)
    return ws


def _sigterm_at_update(monkeypatch: pytest.MonkeyPatch, update: int) -> Any:
    """Make this process receive SIGTERM at CRMSE update ``update`` (a scheduler's stop); returns
    the real step."""
    from crmse_cli.train import contrastive

    real_step = contrastive.ContrastiveTrainer.step
    calls = {"n": 0}

    def step(self: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == update:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(self)

    monkeypatch.setattr(contrastive.ContrastiveTrainer, "step", step)
    return real_step


def test_sigterm_interrupts_a_single_process_regularize(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from crmse_cli.train import contrastive

    real_step = _sigterm_at_update(monkeypatch, 2)
    home = ["--home", str(ws.home)]
    code, _, err = cli_main(
        monkeypatch, capsys, *home, "regularize", "--from", "tiny", "--name", "term", *TINY_CRMSE
    )
    assert code == 130, err
    run = Registry.open(ws).get_run("term")
    assert run.status == "interrupted" and "another process" not in (run.error or "")
    assert f"continue it with `crmse regularize --resume {run.id}`" in err
    monkeypatch.setattr(contrastive.ContrastiveTrainer, "step", real_step)
    code, _, err = cli_main(monkeypatch, capsys, *home, "regularize", "--resume", run.id)
    assert code == 0, err
    assert Registry.open(ws).get_run(run.id).status == "completed"


def test_sigterm_requeues_the_job_of_a_sweep_worker(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from crmse_cli.stages.sweep import create_sweep, work
    from crmse_cli.train import contrastive

    fast = {"n_updates": 3, "n_chains": 2, "steps_per_update": 2, "batch_size": 4, "warmup_updates": 1,
            "checkpoint_every": 1}  # fmt: skip
    sample = {"replicas": 2, "steps": 4, "record_every": 2, "check_every": 2}
    create_sweep(ws, "stop", sources=["tiny"], lambdas=[0.1], seeds=[0], regularize_options=fast,
                 sample_options=sample)  # fmt: skip
    real_step = _sigterm_at_update(monkeypatch, 2)
    code, _, err = cli_main(monkeypatch, capsys, "--home", str(ws.home), "sweep", "work", "stop")
    assert code == 130, err
    assert "continue with `crmse sweep work stop`" in err
    reg = Registry.open(ws)
    [job] = reg.sweep_jobs("stop")
    assert (job.state, job.owner_pid, job.attempts) == ("queued", None, 1)  # not `running` under a dead pid
    assert reg.get_run(job.run_id).status == "interrupted"
    monkeypatch.setattr(contrastive.ContrastiveTrainer, "step", real_step)
    res = work(ws, "stop", registry=reg)
    assert res.done == [job.run_id] and res.failed == []
    assert [m.step for m in reg.metrics(job.run_id, name="loss")] == [1, 2, 3]  # resumed, none twice


class _SignalledRegistry:
    """A registry whose closing write is hit by SIGTERM half-way (torchrun's stop, mid-write)."""

    def __init__(self) -> None:
        self.status: dict[str, str] = {}

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # lands inside the write, before it commits
        signal.getsignal(signal.SIGTERM)  # a bytecode boundary: a Python handler would run here
        self.status[run_id] = status


@pytest.mark.parametrize(
    "failure", [RuntimeError("gloo: connection closed by peer"), SystemExit("terminated")]
)
def test_a_sigterm_during_the_closing_write_does_not_lose_the_failed_status(failure: BaseException) -> None:
    """The crashed-rank race of 2026-12-07: the collective fails, then torchrun's SIGTERM lands in
    the write of ``failed``; the CLI's handler turned it into KeyboardInterrupt, the write was lost
    and the dead run was later reaped as ``interrupted``."""
    from crmse_cli.cli.app import _terminate
    from crmse_cli.stages._run import tracked

    previous = signal.signal(signal.SIGTERM, _terminate)
    reg = _SignalledRegistry()
    caught: BaseException | None = None
    try:
        with tracked(reg, "abcd1234"):  # type: ignore[arg-type]
            raise failure
    except BaseException as exc:  # noqa: BLE001 - a KeyboardInterrupt here is the bug, not a stop
        caught = exc
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert reg.status == {"abcd1234": "failed"}
    assert caught is failure  # the run's own error reaches the CLI, not the held signal


def test_a_sigterm_during_the_completed_write_still_stops_the_command() -> None:
    """On success the held signal is delivered after the write: the command still stops."""
    from crmse_cli.cli.app import _terminate
    from crmse_cli.stages._run import tracked

    previous = signal.signal(signal.SIGTERM, _terminate)
    reg = _SignalledRegistry()
    caught: BaseException | None = None
    try:
        with tracked(reg, "abcd1234"):  # type: ignore[arg-type]
            pass
    except BaseException as exc:  # noqa: BLE001 - the delivered signal, caught to check it
        caught = exc
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert reg.status == {"abcd1234": "completed"}
    assert isinstance(caught, KeyboardInterrupt)


def test_a_sigterm_inside_a_checkpoint_write_is_an_interruption(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stop that lands inside ``torch.save`` surfaces as the zip writer's RuntimeError ("unexpected
    pos ...") with the KeyboardInterrupt as its context: the 2026-12-08 study's parent ended
    ``failed`` with "internal error: RuntimeError" and no resume hint."""
    import torch

    from crmse_cli.model import checkpoint

    real_save = torch.save

    class Stopped:
        """A file whose third write receives SIGTERM (the CLI's handler raises KeyboardInterrupt)."""

        def __init__(self, fh: Any) -> None:
            self.fh, self.writes = fh, 0

        def write(self, data: Any) -> int:
            self.writes += 1
            if self.writes == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            return int(self.fh.write(data))

        def flush(self) -> None:
            self.fh.flush()

    saves = {"n": 0}

    def save(obj: Any, fh: Any) -> None:
        saves["n"] += 1
        real_save(obj, Stopped(fh) if saves["n"] == 2 else fh)  # the first is the start's "last"

    monkeypatch.setattr(checkpoint.torch, "save", save)
    home = ["--home", str(ws.home)]
    code, _, err = cli_main(
        monkeypatch, capsys, *home, "regularize", "--from", "tiny", "--name", "cut", *TINY_CRMSE
    )
    assert code == 130, err
    assert "internal error" not in err
    run = Registry.open(ws).get_run("cut")
    assert run.status == "interrupted"
    assert f"continue it with `crmse regularize --resume {run.id}`" in err
    code, _, err = cli_main(monkeypatch, capsys, *home, "regularize", "--resume", run.id)
    assert code == 0, err
    assert Registry.open(ws).get_run(run.id).status == "completed"


def test_a_run_stopped_before_its_first_checkpoint_says_start_again(ws: Workspace) -> None:
    """Not "continue it with --resume" again: that hint sent the user round in a circle."""
    from crmse_cli.errors import NotFoundError
    from crmse_cli.stages._models import run_checkpoint

    reg = Registry.open(ws)
    run = reg.create_run(kind="regularize", name="early", config={}, seed=0)
    reg.set_status(run.id, "interrupted")
    with pytest.raises(NotFoundError, match="saved a checkpoint: nothing to resume; start it again"):
        run_checkpoint(reg, reg.get_run(run.id))
