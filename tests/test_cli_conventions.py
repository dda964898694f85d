"""What a click/Typer user expects of `crmse`: value names in --help, choices, exit codes, tables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.console import Console
from test_cli import _command_paths
from typer.testing import CliRunner

from crmse_cli.cli import app as app_module
from crmse_cli.cli.tables import metrics_tables, short_labels
from crmse_cli.data.sources import SOURCES
from crmse_cli.registry.entities import RUN_KINDS
from crmse_cli.registry.store import Registry
from crmse_cli.sampling.kinds import chain_sampler_names, sampler_names
from crmse_cli.sampling.sample_config import STARTS
from crmse_cli.stages.stabilize_config import RECIPES
from crmse_cli.train.contrastive_config import (
    CHAIN_SOURCES,
    INITS,
    LAMBDA_UNITS,
    OPTIMIZER_INITS,
    POSITIVES,
)
from crmse_cli.train.lambda_schedule import LAMBDA_CONTROLS
from crmse_cli.train.readings import ETA_UNITS
from crmse_cli.workspace import Workspace

TYPER_METAVAR = re.compile(r"<(bool|str|int|float|path|int range|float range)>")


def invoke(home: Path, *args: str, columns: int = 200) -> tuple[int, str]:
    """Run the app in this process (as `crmse --home HOME ARGS`); exit code and all output."""
    app_module._register()
    env = {"COLUMNS": str(columns), "CRMSE_NO_PROGRESS": "1", "TERM": "dumb"}
    res = CliRunner().invoke(app_module.app, ["--home", str(home), *args], env=env)
    return res.exit_code, res.output


def test_help_shows_click_value_names_and_no_typer_metavars(tmp_path: Path) -> None:
    paths = _command_paths()
    assert len(paths) > 15
    for path in paths:
        code, out = invoke(tmp_path, *path, "--help", columns=100)
        assert code == 0, (path, out)
        assert not TYPER_METAVAR.search(out), (path, TYPER_METAVAR.findall(out))
    code, out = invoke(tmp_path, "--help")
    json_line = next(line for line in out.splitlines() if "--json" in line)
    assert "BOOL" not in json_line.upper().replace("--JSON", "")  # a flag: no value after it
    assert re.search(r"--threads\s+INTEGER", out)


def test_regularize_help_groups_its_options_in_panels(tmp_path: Path) -> None:
    code, out = invoke(tmp_path, "regularize", "--help", columns=120)
    assert code == 0
    for panel in ("Contrastive term", "Chains", "Optimizer", "Study arms", "Force budget"):
        assert f"─ {panel} ─" in out, panel
    chains = out.split("─ Chains ─")[1].split("╰")[0]
    assert "--chain-sampler" in chains and "[ula|mala]" in chains


DEVICES = ("cpu", "cuda", "cuda:N")
DTYPES = ("float32", "float64")
SWEEP = ("--name", "s", "--from", "r")
CHOICES = [  # (command, its other arguments, option, the choices it names)
    (("sample",), ("m",), "--integrator", sampler_names()),
    (("sample",), ("m",), "--start", STARTS),
    (("sample",), ("m",), "--dtype", DTYPES),
    (("sample",), ("m",), "--device", DEVICES),
    (("pretrain",), (), "--device", DEVICES),
    (("pretrain",), (), "--dtype", DTYPES),
    (("regularize",), (), "--chain-sampler", chain_sampler_names()),
    (("regularize",), (), "--init", INITS),
    (("regularize",), (), "--lambda-units", tuple(LAMBDA_UNITS)),
    (("regularize",), (), "--eta-units", ETA_UNITS),
    (("regularize",), (), "--chain-source", CHAIN_SOURCES),
    (("regularize",), (), "--positives", POSITIVES),
    (("regularize",), (), "--optimizer-init", OPTIMIZER_INITS),
    (("regularize",), (), "--lambda-control", LAMBDA_CONTROLS),
    (("regularize",), (), "--device", DEVICES),
    (("reproduce",), ("ethanol",), "--preset", ("quick", "paper")),
    (("reproduce",), ("ethanol",), "--recipe", RECIPES),
    (("stabilize",), ("m",), "--recipe", RECIPES),
    (("mace", "import"), ("m.model", "--data", "x.xyz"), "--energy-unit", ("eV", "kcal/mol")),
    (("fetch", "xyz"), ("x.xyz", "--name", "x"), "--energy-unit", ("eV", "kcal/mol")),
    (("runs",), (), "--kind", RUN_KINDS),
    (("fetch", "rmd17"), ("ethanol",), "--source", SOURCES),
    (("sweep", "create"), SWEEP, "--device", DEVICES),
]


@pytest.mark.parametrize(
    ("command", "args", "option", "values"), CHOICES, ids=[f"{c[0]} {o}" for c, _, o, _ in CHOICES]
)
def test_an_invalid_choice_exits_2_naming_the_choices(
    tmp_path: Path, command: tuple[str, ...], args: tuple[str, ...], option: str, values: tuple[str, ...]
) -> None:
    code, out = invoke(tmp_path, *command, *args, option, "bogus")
    assert code == 2, out
    assert f"'bogus' is not one of {', '.join(values)}" in out
    assert "Traceback" not in out
    _, help_out = invoke(tmp_path, *command, "--help", columns=200)
    line = next(line for line in help_out.splitlines() if f" {option} " in line)
    assert "[" + "|".join(values) + "]" in line, line


def test_a_registry_choice_shows_the_samplers_registered_now(tmp_path: Path) -> None:
    """--help lists the samplers registered when it is shown, not when the app was built: a sampler
    registered (a plugin, another test) before the first command must not stay in the list after
    it is unregistered, nor one registered later be missing. Either order fails a cached list."""
    from crmse_cli.sampling.kinds import SamplerKind, register, unregister

    def label(command: str, option: str, *args: str) -> str:
        _, out = invoke(tmp_path, command, *args, "--help", columns=200)
        return next(line for line in out.splitlines() if f" {option} " in line)

    extra = SamplerKind("listed-now", "crmse_cli.sampling.ula:X", has_time=False, chains=True, help="x")
    register(extra)
    try:
        assert "[" + "|".join(sampler_names()) + "]" in label("sample", "--integrator")
        assert "|listed-now]" in label("regularize", "--chain-sampler")
    finally:
        unregister(extra.name)
    for command, option, names in (("sample", "--integrator", sampler_names()),
                                   ("regularize", "--chain-sampler", chain_sampler_names())):  # fmt: skip
        line = label(command, option)
        assert "[" + "|".join(names) + "]" in line and "listed-now" not in line, line


def test_commands_are_registered_once_however_often_the_app_runs(tmp_path: Path) -> None:
    """Each in-process run calls ``_register()``: the app keeps one copy of each command."""
    invoke(tmp_path, "--help")
    commands, groups = list(app_module.app.registered_commands), list(app_module.app.registered_groups)
    assert commands and groups
    for _ in range(3):
        invoke(tmp_path, "runs", "--help")
    assert app_module.app.registered_commands == commands
    assert app_module.app.registered_groups == groups
    names = [c.name for c in commands] + [g.name for g in groups]
    assert len(names) == len(set(names)), names


def test_the_choices_cost_the_command_line_no_heavy_import() -> None:
    """The tuples behind the choices come from light modules: `crmse --help` loads no numpy or torch."""
    import subprocess
    import sys

    code = (
        "import sys; from crmse_cli.cli import app; app._register(); "
        "print(sorted({'numpy', 'torch'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_valid_choices_pass_and_hidden_ones_too(tmp_path: Path) -> None:
    from crmse_cli.cli.conventions import choice

    option = choice(("quick", "paper"), hidden=("tiny",), help="h")
    assert option.parser("tiny") == "tiny" and option.parser("paper") == "paper"
    device = choice(("cpu", "cuda", "cuda:N"), help="h")
    assert device.parser("cuda:1") == "cuda:1"
    with pytest.raises(Exception, match="not one of"):
        device.parser("cuda:x")


def test_choice_tuples_agree_with_the_modules_that_import_torch() -> None:
    from crmse_cli.cli.reproduce_cmd import HIDDEN_PRESETS, PRESET_CHOICES
    from crmse_cli.model.config import DTYPES
    from crmse_cli.sampling.sample_config import SampleConfig
    from crmse_cli.stages.reproduce import PRESETS

    assert SampleConfig.__dataclass_fields__["dtype"].metadata["crmse.setting"].choices == DTYPES
    assert PRESET_CHOICES == tuple(k for k, p in PRESETS.items() if not p.hidden)
    assert HIDDEN_PRESETS == tuple(k for k, p in PRESETS.items() if p.hidden)


def test_runs_kind_bogus_is_a_usage_error_and_an_empty_kind_says_so(tmp_path: Path) -> None:
    reg = Registry.open(Workspace.resolve(tmp_path))
    reg.create_run(kind="pretrain", name="p0", config={}, seed=0)
    reg.close()
    code, out = invoke(tmp_path, "runs", "--kind", "bogus")
    assert code == 2 and "no runs yet" not in out and "pretrain" in out
    code, out = invoke(tmp_path, "runs", "--kind", "sample")
    assert code == 0 and "no sample runs yet" in out and "no runs yet" not in out


def test_fetch_xyz_missing_file_does_not_point_at_from(tmp_path: Path) -> None:
    from test_cli import crmse

    proc = crmse(
        tmp_path, "fetch", "xyz", str(tmp_path / "missing.xyz"), "--name", "m", "--energy-unit", "eV"
    )
    assert proc.returncode == 1 and "no such file" in proc.stderr, proc.stderr
    assert "--from" not in proc.stderr  # a positional argument, not --from (fetch rmd17's option)


def test_options_that_cannot_go_together_are_usage_errors(tmp_path: Path) -> None:
    """Exit 2 like click's usage errors (runtime errors exit 1), one line, nothing registered."""
    from test_cli import crmse

    config = tmp_path / "c.toml"
    config.write_text("[contrastive]\nlambda = 0.1\n")
    for args, text in (
        (("regularize", "--resume", "r", "--config", str(config)), "drop --config"),
        (("regularize", "--from", "r", "--from-model", str(tmp_path / "m.model")), "not both"),
        (("table",), "give runs, or --group"),
    ):
        proc = crmse(tmp_path, *args)
        assert proc.returncode == 2, (args, proc.returncode, proc.stderr)
        assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and text in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.slow
def test_a_taken_dataset_name_hints_at_options_the_command_has(tmp_path: Path) -> None:
    """`mace import` and `regularize --from-model` have no --force: their refusal names what they have."""
    pytest.importorskip("mace", reason="mace-torch is not installed (the optional 'mace' extra)")
    import torch
    from test_cli import crmse
    from test_mace import small_mace
    from test_unsupported_xyz import _frames, _write

    model = tmp_path / "my.model"
    torch.save(small_mace(), model)
    data = _write(tmp_path / "train.xyz", _frames(6))
    home = tmp_path / "home"
    fetched = crmse(home, "fetch", "xyz", str(data), "--name", "train", "--energy-unit", "kcal/mol")
    assert fetched.returncode == 0, fetched.stderr  # "train" is taken by the file read in kcal/mol
    proc = crmse(home, "mace", "import", str(model), "--data", str(data), "--trust-code")
    assert proc.returncode == 1 and "registered already" in proc.stderr, proc.stderr
    assert "--dataset" in proc.stderr and "--force" not in proc.stderr
    proc = crmse(home, "regularize", "--from-model", str(model), "--data", str(data), "--trust-code")
    assert proc.returncode == 1 and "registered already" in proc.stderr, proc.stderr
    assert "crmse mace import" in proc.stderr and "--force" not in proc.stderr


LONG = {
    f"repro-ethanol-xtb-quick-{tag}": {
        "test_force_mae": (0.123456 * (i + 1), "kcal/mol/Å"),
        "energy_total": (-97123.456 - i, "kcal/mol"),
        "stable_fraction": (0.96875, ""),
    }
    for i, tag in enumerate(["mse", "crmse-lambda0.015-seed0", "crmse-lambda0.1-seed1", "control-seed2"])
}


def test_tables_at_80_columns_keep_numbers_whole_and_names_apart() -> None:
    console = Console(width=80, record=True, force_terminal=False)
    for table in metrics_tables(
        "compare run abc", LONG, ["test_force_mae", "energy_total", "stable_fraction"], width=80
    ):
        console.print(table)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    numbers = {
        "0.1235",
        "0.2469",
        "0.3704",
        "0.4938",
        "-97123.46",
        "-97124.46",
        "-97125.46",
        "-97126.46",
        "0.9688",
    }
    for number in numbers:
        assert number in text, (number, text)
    assert "repro-ethanol-xtb-quick-…" in text  # the shared prefix, once, in the title
    header = text.split("┏")[1].split("┡")[0]
    assert "…" not in header  # no name cut to the shared prefix (they were all "repro-ethanol-xtb-quic…")
    assert "mse" in header and "control" in header


def test_many_runs_split_over_tables_instead_of_running_off_the_screen() -> None:
    runs = {f"run-{i}": {"energy_total": (-97123.456 + i, "kcal/mol")} for i in range(9)}
    console = Console(width=80, record=True, force_terminal=False)
    tables = metrics_tables("t", runs, ["energy_total"], width=80)
    assert len(tables) > 1
    for table in tables:
        console.print(table)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for i in range(9):
        assert f"run-{i}" in text and f"{-97123.456 + i:.2f}" in text


def _column(out: str, title: str, header: str) -> str:
    """The text of column ``header`` of the table titled ``title`` in ``out``, lines joined."""
    lines = out.split(title, 1)[1].splitlines()
    heads = [cell.strip() for cell in next(line for line in lines if line.startswith("┃")).split("┃")]
    index = heads.index(header)
    body = lines[next(i for i, line in enumerate(lines) if line.startswith("┡")) + 1 :]
    cells = []
    for line in body:
        if not line.startswith("│"):
            break
        cells.append(line.split("│")[index].strip())
    return "".join(cells)


def test_datasets_table_at_80_columns_keeps_names_and_numbers(tmp_path: Path) -> None:
    from test_cli import crmse
    from test_unsupported_xyz import _frames, _write

    data = _write(tmp_path / "frames.xyz", _frames(12))
    name = "ethanol-xtb-500K-n2000-seed0-long-name"
    fetched = crmse(tmp_path, "fetch", "xyz", str(data), "--name", name, "--energy-unit", "eV")
    assert fetched.returncode == 0, fetched.stderr
    out = crmse(tmp_path, "datasets", columns=80).stdout
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "…" not in out  # nothing cut: long names and paths wrap
    assert _column(out, "datasets", "name") == name  # wrapped, whole when joined
    assert (_column(out, "datasets", "frames"), _column(out, "datasets", "atoms")) == ("12", "9")


def test_show_at_80_columns_folds_paths_and_keeps_numbers(tmp_path: Path) -> None:
    from test_cli import crmse

    reg = Registry.open(Workspace.resolve(tmp_path))
    run = reg.create_run(kind="pretrain", name="p-long", config={"dataset": "x"}, seed=0)
    path = str(tmp_path / "runs" / run.id / "checkpoints" / "a-rather-long-checkpoint-file-name-final.pt")
    reg.add_checkpoint(run.id, path=path, sha256="ab" * 32, step=123456, format_version=1, tag="final")
    name = "configurational_temperature_of_the_samples_K"
    reg.log_metric(run.id, name=name, value=-97123.456, unit="K", split="test", step=123456)
    reg.close()
    out = crmse(tmp_path, "show", "p-long", columns=80).stdout
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "…" not in out
    assert path in _column(out, "checkpoints", "path")  # folded over lines, whole when joined
    assert name in _column(out, "metrics (last value)", "metric")
    assert "-97123.46" in out and "123456" in out


def test_sweep_status_at_80_columns_keeps_numbers_and_whole_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    import crmse_cli.stages.sweep_status as status
    from crmse_cli.cli import sweep_cmd

    error = "error: out of memory in the sampler, use fewer replicas"
    rows = [
        SimpleNamespace(
            position=i, run_name=f"grid.mse-parent-run.lam0.015.s{i}", run_id="x", lambda_=0.015,
            seed=1000 + i, state="failed", stage="regularize", run_status="failed", attempts=12,
            owner="host-a:1234", error=error,
        )
        for i in range(2)
    ]  # fmt: skip
    monkeypatch.setattr(status, "sweep_status", lambda ws, name: rows)
    console = Console(width=80, record=True, force_terminal=False)
    monkeypatch.setattr(sweep_cmd, "console", console)
    code, _ = invoke(tmp_path, "sweep", "status", "grid")
    text = console.export_text()
    assert code == 0 and max(len(line) for line in text.splitlines()) <= 80
    assert all(f" {1000 + i} " in text for i in range(2)) and " 0.015 " in text and " 12 " in text
    lines = text.splitlines()  # the name folds over two lines, nothing cut
    assert any(
        "grid.mse-parent-run" in a and ".lam0.015.s0" in b for a, b in zip(lines[:-1], lines[1:], strict=True)
    )
    assert "fewer replicas" in text and "…" not in text


def test_short_labels() -> None:
    assert short_labels(["repro-eth-quick-mse", "repro-eth-quick-crmse"]) == (
        "repro-eth-quick-",
        ["mse", "crmse"],
    )
    assert short_labels(["a-1", "a-2"]) == ("", ["a-1", "a-2"])  # too short a prefix to bother
    assert short_labels(["same-name-x", "same-name-x"])[0] == ""
    assert short_labels(["only-one-run"]) == ("", ["only-one-run"])
