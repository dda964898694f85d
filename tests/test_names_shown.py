"""Issue 28 items 9 and 10: names typed by one user and shown to others.

9: a run name holding ``<!--<script>`` must not break the HTML reports' embedded JSON (every
``<`` escaped as ``\\u003c``); 10: control characters are refused in new run, sweep and dataset
names, and names already in a registry print escaped (no ESC reaches the terminal, no newline
splits a row, ``[red]`` is not read as rich markup).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import plotly.graph_objects as go
import pytest
from synthetic import cli_main, make_workspace, one_line_error

from crmse_cli.errors import CrmseError
from crmse_cli.registry.store import Registry
from crmse_cli.workspace import Workspace

EVIL_HTML = "x<!--<script>y</script>&"
JSON_BLOCKS = ("report-data", "plot-config", "figure-data")


def _json_blocks(page: str) -> dict[str, str]:
    return {
        key: re.search(rf'<script type="application/json" id="{key}">(.*?)</script>', page, re.S).group(1)
        for key in JSON_BLOCKS
    }


def test_page_json_escapes_every_angle_bracket() -> None:
    from crmse_cli.report.html import page
    from crmse_cli.report.plotting import FigureSpec

    fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 2], name=EVIL_HTML))
    html = page("t", "", [FigureSpec("a", "energies", "", fig)], {"runs": [{"name": EVIL_HTML}]})
    blocks = _json_blocks(html)
    for key, text in blocks.items():
        assert "<" not in text and ">" not in text, key  # no tag, comment or </script> can open
    assert json.loads(blocks["report-data"])["runs"][0]["name"] == EVIL_HTML
    assert json.loads(blocks["figure-data"])[0]["figure"]["data"][0]["name"] == EVIL_HTML
    # Exactly one </script> after each opening tag: the embedded data never closes or nests one.
    assert html.count("<script") == html.count("</script>")


def test_sweep_report_page_escapes_a_source_name() -> None:
    from crmse_cli.report.sweep import render_page, summarize

    points = [{"source": "s", "lambda": 0.1, "seed": 0, "metrics": {"energy_ks": (0.5, "1")}}]
    html = render_page(EVIL_HTML, {"lambdas": [0.1]}, summarize(points, {"s": EVIL_HTML}), n_jobs=1)
    blocks = _json_blocks(html)
    assert all("<" not in text for text in blocks.values())
    assert json.loads(blocks["report-data"])["sweep"] == EVIL_HTML


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "home")


@pytest.mark.parametrize("bad", ["a\x1b[31mred", "two\nlines", "tab\there", "bidi\u202egnp", "nul\x00"])
def test_names_with_control_characters_are_refused_when_created(ws: Workspace, bad: str) -> None:
    reg = Registry.open(ws)
    with pytest.raises(CrmseError, match="control characters") as info:
        reg.create_run(kind="pretrain", name=bad, config={}, seed=None)
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)
    with pytest.raises(CrmseError, match="control characters"):
        reg.add_dataset(
            name=bad, source="x", sha256="0" * 64, path="/x", n_frames=1, n_atoms=1, species=[1],
            units={}, splits={}, meta={},
        )  # fmt: skip
    with pytest.raises(CrmseError, match="control characters"):
        reg.create_sweep(name=bad, config={}, jobs=[])
    assert reg.list_runs() == [] and [d.name for d in reg.list_datasets()] == ["ethanol"]
    reg.close()


def test_the_cli_refuses_a_control_character_name_in_one_line(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_trust import legit_checkpoint

    model = legit_checkpoint(ws.home / "mine.pt")
    home = ["--home", str(ws.home)]
    argv = ["sample", str(model), "--trust-code", "--steps", "2", "--name", "a\x1b[2Jb"]
    line = one_line_error(cli_main(monkeypatch, capsys, *home, *argv), "control characters", "\\x1b")
    assert "\x1b" not in line
    reg = Registry.open(ws)
    assert reg.list_runs() == []
    reg.close()


def _legacy_row(ws: Workspace, name: str) -> str:
    """A run row whose name holds what create_run now refuses (an old row, a hand-written one)."""
    from crmse_cli.registry.tables import RunRow

    reg = Registry.open(ws)
    run = reg.create_run(kind="pretrain", name="placeholder", dataset="ethanol", config={}, seed=None)
    with reg._session() as s:  # noqa: SLF001 - a row no crmse command writes any more
        s.get(RunRow, run.id).name = name
        s.commit()
    reg.set_status(run.id, "failed", error=f"boom {name}")
    reg.close()
    return run.id


def test_names_already_in_the_registry_print_escaped(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "[red]x\x1b[31mred\nrow"
    run_id = _legacy_row(ws, name)
    home = ["--home", str(ws.home)]
    for argv in (["runs"], ["show", run_id]):
        code, out, err = cli_main(monkeypatch, capsys, *home, *argv)
        assert code == 0, err
        assert "\x1b" not in out, argv
        assert "[red]x\\x1b[31mred\\nrow" in out.replace("\n", "").replace(" ", "") or "[red]x" in out, argv
        assert "\\x1b" in out, argv  # shown as an escape
    # An error naming it: one line, escaped.
    code, out, err = cli_main(monkeypatch, capsys, *home, "sample", name)
    assert code != 0 and "\x1b" not in err and len(err.strip().splitlines()) == 1


def test_shown_escapes_markup_and_controls() -> None:
    from rich.console import Console

    from crmse_cli.cli.common import shown
    from crmse_cli.text import visible

    assert visible("ok name-1.x") == "ok name-1.x"
    assert visible("a\x1b[0m\n\u202e") == "a\\x1b[0m\\n\\u202e"
    console = Console(record=True, width=200, force_terminal=True, color_system="truecolor")
    console.print(f"run {shown('[red]x')} done", highlight=False)
    text = console.export_text(styles=True)
    assert "[red]x" in text and "\x1b[31m" not in text  # printed literally, not coloured
