"""Data-parallel CRMSE over 2 processes (gloo on CPU): the update equals the single-process update
on the union of the ranks' batches and chains; a 2-rank run resumes exactly; torchrun runs the CLI;
a crashed rank ends the run as failed instead of hanging."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from crmse_cli.train.contrastive import ContrastiveConfig, ContrastiveTrainer
from crmse_cli.train.distributed import DistContext, torchrun_command
from crmse_cli.workspace import Workspace

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _join(rank: int, world: int, port: int) -> DistContext:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    return DistContext.from_env("cpu", timeout_s=120)


def _toy_config(**kw: Any) -> ContrastiveConfig:
    from test_contrastive import T_K

    base: dict[str, Any] = dict(
        lambda_=1.0,
        lambda_units="kcal",
        energy_weight=1.0,
        eta_A2=0.02,
        steps_per_update=10,
        n_chains=16,
        n_updates=1,
        temperature_K=T_K,
        lr=0.01,
        warmup_updates=0,
        batch_size=16,
        seed=0,
    )
    base.update(kw)
    return ContrastiveConfig(**base)


def _toy_worker(rank: int, world: int, port: int, out: str) -> None:
    from test_contrastive import ToyModel, target_frames

    dist = _join(rank, world, port)
    x, e, f = target_frames(100, seed=1)
    model = ToyModel(depth=12.0)
    trainer = ContrastiveTrainer(model, list(model.parameters()), x, e, f, _toy_config(), dist=dist)
    rec = trainer.step()
    torch.save(
        {
            "idx": trainer.last_batch,
            "chains": trainer.chains.clone(),
            "params": [p.detach().clone() for p in model.parameters()],
            "record": dict(rec.__dict__),
        },
        Path(out) / f"rank{rank}.pt",
    )
    DistContext(rank=rank, world_size=world).finish()  # no-op where the stage already left the group


def test_two_rank_update_equals_the_single_process_update_on_the_union(tmp_path: Path) -> None:
    from test_contrastive import ToyModel, target_frames

    mp.spawn(_toy_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert not torch.equal(r0["chains"], r1["chains"])  # the ranks hold different chains
    for a, b in zip(r0["params"], r1["params"], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # and stay in sync
    x, e, f = target_frames(100, seed=1)
    model = ToyModel(depth=12.0)
    single = ContrastiveTrainer(model, list(model.parameters()), x, e, f, _toy_config())
    single.chains = torch.cat([r0["chains"], r1["chains"]])
    rec = single.gradient_step(torch.cat([r0["idx"], r1["idx"]]))
    for a, b in zip(model.parameters(), r0["params"], strict=True):
        torch.testing.assert_close(a.detach(), b, rtol=1e-10, atol=1e-12)
    for key in ("loss_mse", "loss_c", "energy_data", "energy_chains", "grad_ratio", "chain_ks"):
        assert rec.__dict__[key] == pytest.approx(r0["record"][key], rel=1e-9, abs=1e-12), key


# -- the regularize stage on 2 ranks -------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with a synthetic ethanol dataset and a 2-epoch pretrain run named ``tiny``."""
    from ase.build import molecule
    from test_fetch import make_archive

    from crmse_cli.stages.fetch import fetch_rmd17
    from crmse_cli.stages.pretrain import preset_config, pretrain

    atoms = molecule("CH3CH2OH")
    rng = np.random.default_rng(0)
    n = 40
    pos = atoms.positions[None] + 0.05 * rng.normal(size=(n, len(atoms), 3))
    frames = {
        "nuclear_charges": atoms.numbers.astype(np.uint8),
        "coords": pos,
        "energies": -97000.0 + rng.normal(size=n),
        "forces": 5 * rng.normal(size=(n, len(atoms), 3)),
        "old_indices": np.arange(n),
        "old_energies": -97000.0 + rng.normal(size=n),
        "old_forces": rng.normal(size=(n, len(atoms), 3)),
    }
    splits = {f"{k:02d}": {"train": np.arange(0, 20), "test": np.arange(20, 30)} for k in range(1, 6)}
    root = tmp_path_factory.mktemp("dist")
    archive = make_archive(root / "rmd17.tar.bz2", {"ethanol": frames}, splits)
    home = root / "home"
    ws = Workspace.resolve(home)
    fetch_rmd17(ws, "ethanol", from_path=archive)
    cfg = preset_config("quick", {"n_train": 19, "n_val": 1, "max_epochs": 2})
    pretrain(ws, dataset="ethanol", split="01", config=cfg, name="tiny", progress=False)
    return home


def _stage_config(updates: int) -> Any:
    from crmse_cli.stages.regularize import RegularizeConfig

    c = ContrastiveConfig(
        n_chains=4, steps_per_update=5, n_updates=updates, batch_size=8, warmup_updates=2, seed=7
    )
    return RegularizeConfig(contrastive=c, val_every=2, checkpoint_every=1, chains_every=2)


def _stage_worker(rank: int, world: int, port: int, home: str, name: str, resume: bool, stop_at: int) -> None:

    from crmse_cli.stages.regularize import regularize
    from crmse_cli.train import contrastive

    _join(rank, world, port)
    if stop_at:
        real = contrastive.ContrastiveTrainer.step
        calls = {"n": 0}

        def stopping(self: ContrastiveTrainer) -> Any:
            calls["n"] += 1
            if calls["n"] == stop_at:
                raise KeyboardInterrupt
            return real(self)

        contrastive.ContrastiveTrainer.step = stopping  # type: ignore[method-assign]
    ws = Workspace.resolve(Path(home))
    try:
        if resume:
            regularize(ws, None, _stage_config(4), resume=name)
        else:
            regularize(ws, "tiny", _stage_config(4), name=name)
    except KeyboardInterrupt:
        pass
    DistContext(rank=rank, world_size=world).finish()  # no-op where the stage already left the group


def _spawn(home: Path, name: str, *, resume: bool = False, stop_at: int = 0) -> None:
    mp.spawn(_stage_worker, args=(2, _free_port(), str(home), name, resume, stop_at), nprocs=2, join=True)


def test_two_rank_regularize_resumes_exactly(tiny_model: Path) -> None:
    from crmse_cli.model.checkpoint import load_checkpoint
    from crmse_cli.registry.store import Registry

    _spawn(tiny_model, "ddp-full")
    _spawn(tiny_model, "ddp-cut", stop_at=3)
    reg = Registry.open(Workspace.resolve(tiny_model))
    assert reg.get_run("ddp-cut").status == "interrupted"
    _spawn(tiny_model, "ddp-cut", resume=True)
    full, cut = reg.get_run("ddp-full"), reg.get_run("ddp-cut")
    assert full.status == cut.status == "completed" and full.config["processes"] == 2
    pa = [c for c in reg.checkpoints(full.id) if c.tag == "final"][-1].path
    pb = [c for c in reg.checkpoints(cut.id) if c.tag == "final"][-1].path
    a, xa = load_checkpoint(pa)
    b, xb = load_checkpoint(pb)
    for va, vb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(va, vb, rtol=0, atol=0)
    ranks_a, ranks_b = xa["extra"]["trainer_ranks"], xb["extra"]["trainer_ranks"]
    assert len(ranks_a) == 2
    for sa, sb in zip(ranks_a, ranks_b, strict=True):
        torch.testing.assert_close(sa["chains"], sb["chains"], rtol=0, atol=0)
    assert [m.step for m in reg.metrics(cut.id, name="loss")] == [1, 2, 3, 4]


def test_a_resume_on_another_rank_is_not_refused_by_rank_0s_lock(tiny_model: Path) -> None:
    """Rank 0 of a resume takes the run's lock once its plan is done; a slower rank that planned
    after it saw that lock and refused "run ... is being run by process <rank 0>" (a fresh clone's
    tests, 4 workers on 2 cores, 2026-12-08). Only rank 0 checks for another live owner."""
    from crmse_cli.registry.store import Registry
    from crmse_cli.runlock import RunBusyError, RunLock
    from crmse_cli.stages.regularize import plan

    _spawn(tiny_model, "ddp-race", stop_at=3)
    ws = Workspace.resolve(tiny_model)
    reg = Registry.open(ws)
    run = reg.get_run("ddp-race")
    assert run.status == "interrupted"
    with RunLock.acquire(ws.run_dir(run.id), run.id):  # rank 0, already executing the resume
        spec = plan(ws, reg, None, _stage_config(4), resume=run.id, dist=DistContext(rank=1, world_size=2))
        assert spec.resume == run.id
        with pytest.raises(RunBusyError, match="is being run by"):  # another resume's rank 0: refused
            plan(ws, reg, None, _stage_config(4), resume=run.id, dist=DistContext(rank=0, world_size=2))


def test_torchrun_command_runs_crmse_through_this_interpreter() -> None:
    from crmse_cli.errors import CrmseError

    cmd = torchrun_command(3, "--home", "h", "regularize")
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert cmd[3:7] == ["--standalone", "--nproc-per-node", "3", "-m"]
    assert cmd[7:] == ["crmse_cli", "--home", "h", "regularize"]
    with pytest.raises(CrmseError, match="at least one process"):
        torchrun_command(0)


def _torchrun(home: Path, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, OMP_NUM_THREADS="1", CRMSE_NO_PROGRESS="1")
    cmd = torchrun_command(
        2,
        "--home",
        str(home),
        "regularize",
        "--from",
        "tiny",
        "--chains",
        "4",
        "--steps-per-update",
        "5",
        "--batch-size",
        "8",
        *args,
    )
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_torchrun_cli_and_a_crashed_rank_fails_the_run(tiny_model: Path) -> None:
    from crmse_cli.registry.store import Registry

    ok = _torchrun(tiny_model, "--updates", "2", "--name", "torchrun-ok")
    out, _ = ok.communicate(timeout=600)
    assert ok.returncode == 0, out.decode()[-2000:]
    reg = Registry.open(Workspace.resolve(tiny_model))
    run = reg.get_run("torchrun-ok")
    assert run.status == "completed" and run.config["processes"] == 2
    assert [m.step for m in reg.metrics(run.id, name="loss")] == [1, 2]

    crash = _torchrun(tiny_model, "--updates", "100000", "--name", "torchrun-crash")
    deadline = time.time() + 300
    victim = None
    while victim is None and time.time() < deadline:
        time.sleep(1)
        found = reg.find_run("torchrun-crash") if hasattr(reg, "find_run") else None
        try:
            found = found or reg.get_run("torchrun-crash")
        except Exception:  # noqa: BLE001 - not created yet
            continue
        if reg.metrics(found.id, name="loss"):  # training has started on both ranks
            victim = _rank_pid(1, crash.pid)
    assert victim is not None, "the 2-rank run never started"
    os.kill(victim, signal.SIGKILL)
    out, _ = crash.communicate(timeout=300)  # torchrun stops the survivors: no hang
    assert crash.returncode != 0
    status = Registry.open(Workspace.resolve(tiny_model)).get_run("torchrun-crash")
    # Rank 0 ends it failed whichever comes first, the collective's error or torchrun's SIGTERM:
    # the closing write holds the signal (stages._run.closing_write; it once landed mid-write and
    # the run was reaped as interrupted, see tests/test_sigterm.py).
    assert status.status == "failed", (status, out.decode()[-3000:])


def _parent_pid(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state: ppid


def _descends_from(pid: int, root: int) -> bool:
    while pid > 1:
        if pid == root:
            return True
        pid = _parent_pid(pid)
    return False


def _rank_pid(rank: int, root: int) -> int | None:
    """The pid of rank ``rank`` among the descendants of the torchrun process ``root``.

    Only descendants count: another test session's ranks on the same machine are never touched.
    """
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"crmse_cli" in cmd and f"RANK={rank}".encode() in env and b"torch.distributed.run" not in cmd:
            if _descends_from(int(entry.name), root):
                return int(entry.name)
    return None


# -- pretraining on 2 ranks ----------------------------------------------------------------------
def _pretrain_config() -> Any:
    from crmse_cli.stages.pretrain import preset_config

    # 17 frames -> 16 training + 1 validation: batches of 8 split evenly over 2 ranks.
    return preset_config("quick", {"n_train": 16, "n_val": 1, "max_epochs": 2, "batch_size": 8})


def _pretrain_worker(rank: int, world: int, port: int, home: str, out: str) -> None:

    from crmse_cli.data.dataset import Dataset
    from crmse_cli.train.pretrain import PretrainTrainer

    dist = _join(rank, world, port)
    data = Dataset.load(Workspace.resolve(Path(home)).datasets_dir / "ethanol.npz")
    trainer = PretrainTrainer.create(_pretrain_config(), data, "01", dist=dist)
    records = list(trainer.epochs())
    torch.save(
        {"weights": trainer.potential.state_dict(), "loss": [r.train_loss for r in records]},
        Path(out) / f"pre{rank}.pt",
    )
    DistContext(rank=rank, world_size=world).finish()  # no-op where the stage already left the group


def test_two_rank_pretraining_equals_single_process(tiny_model: Path, tmp_path: Path) -> None:
    from crmse_cli.data.dataset import Dataset
    from crmse_cli.train.pretrain import PretrainTrainer

    mp.spawn(_pretrain_worker, args=(2, _free_port(), str(tiny_model), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"pre{r}.pt", weights_only=False) for r in (0, 1))
    data = Dataset.load(Workspace.resolve(tiny_model).datasets_dir / "ethanol.npz")
    single = PretrainTrainer.create(_pretrain_config(), data, "01")
    records = list(single.epochs())
    assert [r.train_loss for r in records] == pytest.approx(r0["loss"], rel=1e-5)
    for k, v in single.potential.state_dict().items():
        torch.testing.assert_close(r0["weights"][k], r1["weights"][k], rtol=0, atol=0)
        torch.testing.assert_close(v, r0["weights"][k], rtol=1e-4, atol=1e-6)


# -- refusals of a torchrun job: before any run row, with crmse's line in torchrun's summary -------
def test_check_shards_refuses_a_count_that_does_not_divide() -> None:
    from crmse_cli.errors import CrmseError

    DistContext().check_shards({"--chains": 3, "--batch-size": 5})  # one process: anything goes
    DistContext(rank=0, world_size=2).check_shards({"--chains": 4, "--batch-size": 8})
    with pytest.raises(CrmseError, match=r"--batch-size = 5 does not divide over 2 processes"):
        DistContext(rank=1, world_size=2).check_shards({"--chains": 4, "--batch-size": 5})


def _fake_world(monkeypatch: pytest.MonkeyPatch, world: int) -> None:
    """``DistContext.from_env`` says rank 0 of ``world`` without a process group (nothing to join)."""
    monkeypatch.setattr(
        DistContext, "from_env", classmethod(lambda cls, device="cpu", **kw: cls(rank=0, world_size=world))
    )


def test_indivisible_chains_are_refused_before_the_run_row_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synthetic import interrupted_regularize, make_workspace, tiny_pretrain

    from crmse_cli.errors import CrmseError
    from crmse_cli.registry.store import Registry
    from crmse_cli.stages.regularize import regularize

    monkeypatch.setenv("CRMSE_NO_PROGRESS", "1")
    ws = make_workspace(tmp_path / "home")
    tiny_pretrain(ws)
    cfg = interrupted_regularize(ws, monkeypatch)  # 2 chains, batches of 4; stopped at update 2
    reg = Registry.open(ws)
    before = [r.id for r in reg.list_runs(kind="regularize")]
    _fake_world(monkeypatch, 3)
    with pytest.raises(CrmseError, match=r"--chains = 2 does not divide over 3 processes; pick a multiple"):
        regularize(ws, "tiny", cfg, name="odd")
    assert [r.id for r in reg.list_runs(kind="regularize")] == before  # no row, not even a failed one
    with pytest.raises(CrmseError, match=r"--chains = 2 does not divide over 3 processes"):
        regularize(ws, None, cfg, resume="reg-cut")
    assert reg.get_run("reg-cut").status == "interrupted"  # still resumable as it was


def test_a_refused_rank_leaves_its_line_for_torchrun_s_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """torchrun's ChildFailedError summary shows crmse's error line, not a link to torch's docs."""
    from synthetic import cli_main, one_line_error
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    reply = tmp_path / "error.json"
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(reply))
    line = one_line_error(cli_main(monkeypatch, capsys, "--home", str(tmp_path / "h"), "show", "nope"))
    failure = ProcessFailure(local_rank=0, pid=1, exitcode=1, error_file=str(reply))
    assert failure.message == line
    summary = ChildFailedError("crmse_cli", {0: failure}).format_msg()
    assert f"traceback : {line}" in summary and "To enable traceback" not in summary
    cli_main(monkeypatch, capsys, "--home", str(tmp_path / "h"), "show", "nope\x1b[31m")
    assert "\x1b" not in ProcessFailure(0, 1, 1, str(reply)).message  # torchrun prints it raw
    monkeypatch.delenv("TORCHELASTIC_ERROR_FILE")
    reply.unlink()
    one_line_error(cli_main(monkeypatch, capsys, "--home", str(tmp_path / "h"), "show", "nope"))
    assert not reply.exists()  # outside torchrun nothing is written


def test_torchrun_refuses_indivisible_chains_with_one_line_and_no_run(tiny_model: Path) -> None:
    from crmse_cli.registry.store import Registry

    job = _torchrun(tiny_model, "--chains", "3", "--updates", "2", "--name", "torchrun-odd")
    out, _ = job.communicate(timeout=600)
    text = out.decode()
    assert job.returncode != 0, text[-2000:]
    assert "error: --chains = 3 does not divide over 2 processes; pick a multiple" in text, text[-3000:]
    assert "traceback : error: --chains = 3" in text, text[-3000:]  # torchrun's summary repeats it
    assert "torchrun-odd" not in [r.name for r in Registry.open(Workspace.resolve(tiny_model)).list_runs()]
