"""Issue 28 item 18: an output file must be a regular file or a new path.

crmse writes by renaming a finished temporary file over the target: a symbolic link would be
replaced by a file, a device (``table --export /dev/full`` as root) by a JSON file. Such targets,
and folders, are refused in one line. Only paths under ``tmp_path`` are used (a FIFO stands in for
a device node; no real /dev node is touched).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from synthetic import cli_main, make_workspace, one_line_error
from test_trust import legit_checkpoint

from crmse_cli.errors import CrmseError
from crmse_cli.fileio import atomic_write, check_output_path
from crmse_cli.registry.store import Registry


@pytest.fixture
def targets(tmp_path: Path) -> dict[str, Path]:
    real = tmp_path / "real.json"
    real.write_text("keep me")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    return {"real": real, "link": link, "fifo": fifo, "folder": folder}


def test_only_regular_files_and_new_paths_are_written(tmp_path: Path, targets: dict[str, Path]) -> None:
    for kind, message in (
        ("link", "symbolic link"),
        ("fifo", "device, FIFO or socket"),
        ("folder", "folder"),
    ):
        with pytest.raises(CrmseError, match=message):
            check_output_path(targets[kind])
        with pytest.raises(CrmseError, match=message):
            atomic_write(targets[kind], lambda fh: fh.write(b"new"))
    assert targets["link"].is_symlink() and targets["real"].read_text() == "keep me"
    assert targets["fifo"].is_fifo() and not list(tmp_path.glob(".*.tmp"))  # no temporary left
    atomic_write(targets["real"], lambda fh: fh.write(b"new"))  # a regular file is replaced
    atomic_write(tmp_path / "sub" / "new.json", lambda fh: fh.write(b"new"))  # a new path is made
    assert targets["real"].read_bytes() == b"new" and (tmp_path / "sub" / "new.json").is_file()


def test_compare_refuses_a_linked_report_before_any_run(targets: dict[str, Path]) -> None:
    from crmse_cli.stages.compare import check_writable

    with pytest.raises(CrmseError, match="symbolic link"):
        check_writable(targets["link"])
    with pytest.raises(CrmseError, match="FIFO"):
        check_writable(targets["fifo"])


def test_commands_refuse_a_link_or_device_target_in_one_line(
    tmp_path: Path,
    targets: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ws = make_workspace(tmp_path / "home")
    reg = Registry.open(ws)
    run = reg.create_run(kind="evaluate", name="ev", dataset="ethanol", config={}, seed=None)
    reg.log_metric(run.id, name="energy_ks", value=0.1, unit="1")
    reg.set_status(run.id, "completed")
    reg.close()
    home = ["--home", str(ws.home)]
    for target in (targets["link"], targets["fifo"]):
        result = cli_main(monkeypatch, capsys, *home, "table", "ev", "--export", str(target))
        one_line_error(result, "not a regular file")
    model = legit_checkpoint(tmp_path / "mine.pt")
    for target in (targets["link"], targets["fifo"]):
        result = cli_main(
            monkeypatch, capsys, *home, "mace", "export", str(model), str(target), "--trust-code"
        )
        one_line_error(result, "not a regular file")
    assert targets["link"].is_symlink() and targets["real"].read_text() == "keep me"
    assert targets["fifo"].is_fifo()
    code, _, err = cli_main(monkeypatch, capsys, *home, "table", "ev", "--export", str(targets["real"]))
    assert code == 0, err  # a regular file is still replaced
