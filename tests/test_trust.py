"""Issue 28 item 1: no code from a file runs unless the user vouched for it (``--trust-code``)
or crmse wrote the file in this workspace (a registered checkpoint in its run's folder).

A crafted checkpoint carries, in ``module.bytes``, a pickle that creates a marker file when it
is unpickled. Every command that loads a model must refuse it in one line, register nothing and
leave the marker uncreated; the same file with ``--trust-code`` does run it (so the probe can
fail), and a legitimate module checkpoint still loads, with the option or from its run folder.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import torch
from synthetic import cli_main, make_workspace, one_line_error
from torch import Tensor, nn

from crmse_cli.errors import CrmseError
from crmse_cli.fileio import sha256_file
from crmse_cli.model.checkpoint import load_checkpoint, save_checkpoint
from crmse_cli.model.module_potential import wrap_module
from crmse_cli.registry.store import Registry
from crmse_cli.workspace import Workspace

EXTRA = {"dataset": "ethanol", "split": "01", "species": [6, 6, 8, 1, 1, 1, 1, 1, 1]}


class Springs(nn.Module):
    """A stand-in for a user's energy module: U = k/2 sum_{i<j} (r_ij - r0)^2 kcal/mol."""

    def __init__(self) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.tensor(0.5, dtype=torch.float64))
        self.r0 = nn.Parameter(torch.tensor(1.5, dtype=torch.float64))

    def forward(self, positions: Tensor, species: Tensor) -> Tensor:
        n = positions.shape[1]
        iu = torch.triu_indices(n, n, offset=1)
        d = (positions[:, iu[0]] - positions[:, iu[1]]).norm(dim=-1)
        return 0.5 * self.k * (d - self.r0).pow(2).sum(-1)


class Marker:
    """Unpickling this creates the file ``path``: the attacker's code, harmless here."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))


def _pickle(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def legit_checkpoint(path: Path) -> Path:
    """A real checkpoint of a wrapped module (format 2, ``module.bytes`` its pickle)."""
    save_checkpoint(path, wrap_module(Springs(), [1, 6, 8]), extra=dict(EXTRA))
    return path


def crafted_checkpoint(path: Path, marker: Path, architecture: str = "module") -> Path:
    """A checkpoint whose ``module.bytes`` runs code (creates ``marker``) when unpickled."""
    legit_checkpoint(path)
    payload = torch.load(path, weights_only=True)
    payload["config"]["architecture"] = architecture
    payload["module"] = {"adapter": architecture, "bytes": _pickle(Marker(marker))}
    torch.save(payload, path)
    return path


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "home")


def _runs(ws: Workspace) -> list[str]:
    reg = Registry.open(ws)
    try:
        return [r.id for r in reg.list_runs()]
    finally:
        reg.close()


def _fake_model_run(ws: Workspace, checkpoint: Path, name: str = "fake") -> str:
    """A completed pretrain run whose registered ``final`` checkpoint row points at ``checkpoint``
    with its true checksum: what anyone who can write rows of a shared registry can do."""
    reg = Registry.open(ws)
    try:
        run = reg.create_run(
            kind="pretrain",
            name=name,
            dataset="ethanol",
            config={"dataset": "ethanol", "split": "01"},
            seed=None,
        )
        reg.add_checkpoint(
            run.id,
            path=str(checkpoint),
            sha256=sha256_file(checkpoint),
            step=0,
            format_version=2,
            tag="final",
        )
        reg.set_status(run.id, "completed")
        return run.id
    finally:
        reg.close()


@pytest.mark.parametrize("architecture", ["module", "mace"])
def test_load_checkpoint_refuses_code_unless_trusted(tmp_path: Path, architecture: str) -> None:
    marker = tmp_path / "pwned"
    path = crafted_checkpoint(tmp_path / "evil.pt", marker, architecture)
    with pytest.raises(CrmseError, match="--trust-code") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value) and not marker.exists()
    if architecture == "module":  # the probe works: trusted, the file's code does run
        with pytest.raises(CrmseError, match="not a torch module"):
            load_checkpoint(path, trust_code=True)
        assert marker.exists()


def test_foreign_mace_model_file_needs_trust(tmp_path: Path) -> None:
    from crmse_cli.model.mace_adapter import load_mace_model

    marker = tmp_path / "pwned"
    (tmp_path / "evil.model").write_bytes(_pickle(Marker(marker)))
    with pytest.raises(CrmseError, match="--trust-code"):
        load_mace_model(tmp_path / "evil.model")
    assert not marker.exists()


def test_every_command_refuses_a_crafted_checkpoint_and_runs_no_code(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    evil = crafted_checkpoint(tmp_path / "evil.pt", marker)
    (tmp_path / "evil.model").write_bytes(_pickle(Marker(marker)))
    (tmp_path / "train.xyz").write_text("")
    fake = _fake_model_run(ws, evil)  # a registry row pointing at the file, checksum and all
    reg = Registry.open(ws)
    bare = reg.create_run(  # a sample run of a bare checkpoint file, as `sample FILE.pt` records it
        kind="sample", name="bare", dataset="ethanol", config={"checkpoint": str(evil)}, seed=0
    )
    reg.set_status(bare.id, "completed")
    reg.close()
    before = _runs(ws)
    home = ["--home", str(ws.home)]
    out = str(tmp_path / "out.model")
    commands = [
        ["sample", str(evil), "--steps", "2"],
        ["sample", "fake", "--steps", "2"],
        ["regularize", "--from", str(evil), "--updates", "1"],
        ["regularize", "--from", "fake", "--updates", "1"],
        ["regularize", "--from-model", str(tmp_path / "evil.model"), "--data", str(tmp_path / "train.xyz")],
        ["mace", "import", str(tmp_path / "evil.model"), "--data", str(tmp_path / "train.xyz")],
        ["mace", "export", str(evil), out],
        ["mace", "export", "fake", out],
        ["evaluate", "fake"],
        ["evaluate", "bare"],
        ["diagnose", "fake", "--against", "fake"],
        ["diagnose", str(evil), "--against", str(evil)],
        ["compare", "bare"],
    ]
    for argv in commands:
        result = cli_main(monkeypatch, capsys, *home, *argv)
        assert not marker.exists(), argv
        if argv[0] != "compare":  # compare may stop earlier (no samples artifact): still no code
            one_line_error(result, "--trust-code")
        else:
            one_line_error(result)
        assert _runs(ws) == before, argv  # nothing registered on refusal
        assert not Path(out).exists()
    assert fake in before


def test_sweep_worker_runs_no_code_from_a_registered_foreign_checkpoint(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    _fake_model_run(ws, crafted_checkpoint(tmp_path / "evil.pt", marker))
    home = ["--home", str(ws.home)]
    argv = ["sweep", "create", "--name", "s", "--from", "fake", "--lambda", "0.01"]
    created = cli_main(monkeypatch, capsys, *home, *argv)
    assert created[0] == 0, created
    cli_main(monkeypatch, capsys, *home, "sweep", "work", "s")
    assert not marker.exists()
    reg = Registry.open(ws)
    (job,) = reg.sweep_jobs("s")
    assert job.state == "failed" and "--trust-code" in (job.error or "")
    reg.close()


def test_a_legitimate_module_checkpoint_loads_when_trusted_or_written_here(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(ws.home)]
    tiny = ["--replicas", "2", "--steps", "4", "--record-every", "2", "--json"]
    foreign = legit_checkpoint(tmp_path / "mine.pt")
    one_line_error(cli_main(monkeypatch, capsys, *home, "sample", str(foreign), *tiny), "--trust-code")
    code, _, err = cli_main(monkeypatch, capsys, *home, "sample", str(foreign), *tiny, "--trust-code")
    assert code == 0, err
    assert "--trust-code" in cli_main(monkeypatch, capsys, *home, "sample", "--help")[1]
    # Written by crmse in the run's own folder and registered with its checksum: trusted as is.
    reg = Registry.open(ws)
    run = reg.create_run(kind="pretrain", name="own", dataset="ethanol", config=dict(EXTRA), seed=None)
    path = legit_checkpoint(ws.run_dir(run.id) / "checkpoints" / "final.pt")
    reg.add_checkpoint(
        run.id, path=str(path), sha256=sha256_file(path), step=0, format_version=2, tag="final"
    )
    reg.set_status(run.id, "completed")
    reg.close()
    code, _, err = cli_main(monkeypatch, capsys, *home, "sample", "own", *tiny)
    assert code == 0, err
    code, _, err = cli_main(monkeypatch, capsys, *home, "sample", str(path), *tiny)  # its path, too
    assert code == 0, err
