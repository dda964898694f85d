"""One config path for every command: defaults declared once, then a file, then the options given."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import typer
from synthetic import cli_main, interrupted_regularize, make_workspace, one_line_error, tiny_pretrain

from crmse_cli import defaults
from crmse_cli.config import load_config
from crmse_cli.data.xtb_config import XtbMDConfig
from crmse_cli.errors import CrmseError
from crmse_cli.sampling.sample_config import SampleConfig
from crmse_cli.settings import help_text
from crmse_cli.stages.diagnose_config import DiagnoseConfig
from crmse_cli.train.contrastive_config import ContrastiveConfig
from crmse_cli.workspace import Workspace

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.delenv("CRMSE_DB_URL", raising=False)
    monkeypatch.setenv("CRMSE_NO_PROGRESS", "1")
    return make_workspace(tmp_path / "home")


def test_the_examples_spell_the_defaults() -> None:
    assert load_config(SampleConfig, EXAMPLES / "sample.toml", section="sample") == SampleConfig()
    got = load_config(ContrastiveConfig, EXAMPLES / "regularize.toml", section="contrastive")
    assert got == ContrastiveConfig()


def test_the_physical_defaults_are_the_ones_of_defaults_py() -> None:
    s, c, x = SampleConfig(), ContrastiveConfig(), XtbMDConfig()
    assert s.temperature_K == c.temperature_K == x.temperature_K == defaults.TEMPERATURE_K
    assert s.eta_A2 == c.eta_A2 == defaults.ETA_A2
    assert s.friction_per_fs == x.friction_per_fs == defaults.FRICTION_PER_FS
    assert c.lambda_ == defaults.LAMBDA
    assert (c.weights.energy, c.weights.forces) == (defaults.ENERGY_WEIGHT, defaults.FORCE_WEIGHT)


def test_a_file_sets_what_it_names_and_options_override_it(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('[sample]\nreplicas = 7\nintegrator = "mala"\n', encoding="utf-8")
    cfg = load_config(SampleConfig, f, section="sample", replicas=3, seed=None)
    assert (cfg.replicas, cfg.integrator, cfg.seed) == (3, "mala", SampleConfig().seed)
    flat = tmp_path / "flat.toml"  # a file without the table is read whole
    flat.write_text("lambda = 0.1\nn_chains = 8\n", encoding="utf-8")
    c = load_config(ContrastiveConfig, flat, section="contrastive")
    assert (c.lambda_, c.n_chains) == (0.1, 8)
    bad = tmp_path / "bad.toml"
    bad.write_text("[sample]\nreplica = 7\n", encoding="utf-8")
    with pytest.raises(CrmseError, match=r"bad\.toml: unknown key\(s\) replica"):
        load_config(SampleConfig, bad, section="sample")
    with pytest.raises(CrmseError, match=r"^--replicas must be"):  # the option, as typed
        load_config(SampleConfig, None, replicas=0)


@pytest.mark.parametrize(
    ("command", "cls"),
    [
        (["sample"], SampleConfig),
        (["regularize"], ContrastiveConfig),
        (["diagnose"], DiagnoseConfig),
        (["fetch", "xtb"], XtbMDConfig),
    ],
)
def test_options_that_are_settings_default_to_unset(command: list[str], cls: type) -> None:
    """An option with a value of its own would override the --config file and copy a default."""
    from crmse_cli.cli import app as app_module

    app_module._register()
    cmd = typer.main.get_command(app_module.app)
    for word in command:
        cmd = cmd.commands[word]  # type: ignore[attr-defined]
    fields = {f.name for f in dataclasses.fields(cls)} - {"device"}
    seen = set()
    for p in cmd.params:
        name = str(p.name)  # a settings parameter is named as its field
        if name in fields:
            seen.add(name)
            assert p.default is None, f"{' '.join(command)} --{p.name} has default {p.default!r}"
            default = dataclasses.asdict(cls())[name]
            if default is not None and "\\[default:" in (p.help or ""):
                assert p.help == help_text(cls, name), p.help
    assert len(seen) >= 5, seen


def test_sample_reads_a_config_file_and_options_win(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    tiny_pretrain(ws)
    monkeypatch.setenv("CRMSE_HOME", str(ws.home))
    f = tmp_path / "s.toml"
    f.write_text("[sample]\nreplicas = 3\nsteps = 20\nrecord_every = 10\nseed = 4\n", encoding="utf-8")
    argv = ["--json", "sample", "tiny", "--config", str(f), "--seed", "5"]
    code, out, err = cli_main(monkeypatch, capsys, *argv)
    assert code == 0, err
    from crmse_cli.registry.store import Registry

    run = Registry.open(ws).get_run(json.loads(out)["run_id"])
    assert (run.config["replicas"], run.config["steps"], run.config["seed"]) == (3, 20, 5)


def test_resume_with_a_changed_setting_is_refused_naming_it(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny_pretrain(ws)
    interrupted_regularize(ws, monkeypatch)
    monkeypatch.setenv("CRMSE_HOME", str(ws.home))
    line = one_line_error(
        cli_main(monkeypatch, capsys, "regularize", "--resume", "reg-cut", "--lambda", "0.5"), "lambda_"
    )
    assert "0.015" in line and "0.5" in line
    one_line_error(cli_main(monkeypatch, capsys, "regularize", "--resume", "reg-cut", "--config", "x.toml"))
    # The same value as the run's is no change: the run resumes and completes.
    code, _, err = cli_main(monkeypatch, capsys, "regularize", "--resume", "reg-cut", "--seed", "1")
    assert code == 0, err
    from crmse_cli.registry.store import Registry

    assert Registry.open(ws).get_run("reg-cut").status == "completed"


# -- a key the command does not read is refused, naming where it belongs (issue 28, item 4) ------
CONTRASTIVE = {"section": "contrastive"}


@pytest.mark.parametrize(
    ("text", "cls", "section", "message"),
    [
        (
            "lambda = 0.0\n[contrastive]\nn_chains = 8\n",
            ContrastiveConfig,
            CONTRASTIVE,
            r"x\.toml: key 'lambda' is outside \[contrastive\]; put it under \[contrastive\]",
        ),
        (
            "temperature_K = 300\n[sample]\nreplicas = 3\n",
            SampleConfig,
            {"section": "sample"},
            r"x\.toml: key 'temperature_K' is outside \[sample\]; put it under \[sample\]",
        ),
        (
            "[sample]\nreplicas = 3\n[other]\nsteps = 5\n",
            SampleConfig,
            {"section": "sample"},
            r"x\.toml: table \[other\] is not read by this command, which reads \[sample\]; move",
        ),
        (
            "lr = 1e-3\n[contrastive]\nn_chains = 8\n",  # a pretrain setting: under no table of regularize
            ContrastiveConfig,
            CONTRASTIVE,
            r"x\.toml: key 'lr' is outside \[contrastive\]",
        ),
        (
            "n_train = 5\n[contrastive]\nn_chains = 8\n",
            ContrastiveConfig,
            CONTRASTIVE,
            r"key 'n_train' is outside \[contrastive\] and is not one of its settings; remove it",
        ),
        ("contrastive = 5\n", ContrastiveConfig, CONTRASTIVE, r"'contrastive' must be the table"),
    ],
)
def test_keys_outside_the_commands_table_are_refused(
    tmp_path: Path, text: str, cls: type, section: dict[str, object], message: str
) -> None:
    f = tmp_path / "x.toml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(CrmseError, match=message):
        load_config(cls, f, **section)  # type: ignore[arg-type]


def test_json_keys_outside_the_table_are_refused_too(tmp_path: Path) -> None:
    import json

    f = tmp_path / "x.json"
    f.write_text(json.dumps({"lambda": 0.0, "contrastive": {"n_chains": 8}}), encoding="utf-8")
    with pytest.raises(CrmseError, match=r"x\.json: key 'lambda' is outside \[contrastive\]"):
        load_config(ContrastiveConfig, f, **CONTRASTIVE)  # type: ignore[arg-type]
    f.write_text(json.dumps({"contrastive": {"lambda": 0.0}, "other": {}}), encoding="utf-8")
    with pytest.raises(CrmseError, match=r"table \[other\] is not read"):
        load_config(ContrastiveConfig, f, **CONTRASTIVE)  # type: ignore[arg-type]
    f.write_text(json.dumps({"contrastive": {"lambda": 0.0, "n_chains": 8}}), encoding="utf-8")
    cfg = load_config(ContrastiveConfig, f, **CONTRASTIVE)  # type: ignore[arg-type]
    assert (cfg.lambda_, cfg.n_chains) == (0.0, 8)


def test_every_example_file_loads_for_its_command() -> None:
    """The examples' tables are the ones their commands read: none is refused as stray."""
    from crmse_cli.train.pretrain import PretrainConfig

    for name in ("default", "quick", "aspirin"):
        load_config(PretrainConfig, EXAMPLES / f"{name}.toml")  # the whole file, [model] nested
    load_config(SampleConfig, EXAMPLES / "sample.toml", section="sample")
    load_config(ContrastiveConfig, EXAMPLES / "regularize.toml", **CONTRASTIVE)  # type: ignore[arg-type]


def test_a_command_with_two_tables_reads_both_and_refuses_a_third(tmp_path: Path) -> None:
    """regularize reads [contrastive] and [budget] of one file; each loader leaves the other's alone."""
    from crmse_cli.cli.budget_options import load_budget

    f = tmp_path / "two.toml"
    f.write_text("[contrastive]\nlambda = 0.0\n[budget]\nforce_budget = 0.1\n", encoding="utf-8")
    kw = {**CONTRASTIVE, "siblings": ("budget",)}
    assert load_config(ContrastiveConfig, f, **kw).lambda_ == 0.0  # type: ignore[arg-type]
    assert load_budget(f, {}).force_budget == 0.1
    f.write_text("[budget]\nforce_budget = 0.1\n", encoding="utf-8")  # only the sibling table
    assert load_config(ContrastiveConfig, f, **kw) == ContrastiveConfig()  # type: ignore[arg-type]
    f.write_text("lambda = 0.0\n[budget]\nforce_budget = 0.1\n", encoding="utf-8")
    with pytest.raises(CrmseError, match=r"key 'lambda' is outside \[contrastive\]; put it under"):
        load_config(ContrastiveConfig, f, **kw)  # type: ignore[arg-type]
    f.write_text("[contrastive]\n[budget]\n[sampling]\nsteps = 5\n", encoding="utf-8")
    match = r"table \[sampling\] is not read by this command, which reads \[contrastive\], \[budget\]"
    with pytest.raises(CrmseError, match=match):
        load_config(ContrastiveConfig, f, **kw)  # type: ignore[arg-type]
    with pytest.raises(CrmseError, match=r"table \[sampling\] is not read"):
        load_budget(f, {})


def test_regularize_refuses_a_key_above_its_table_and_registers_nothing(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from crmse_cli.registry.store import Registry

    monkeypatch.setenv("CRMSE_HOME", str(ws.home))
    f = tmp_path / "control.toml"
    f.write_text("lambda = 0.0\n[contrastive]\nn_chains = 4\n", encoding="utf-8")
    one_line_error(
        cli_main(monkeypatch, capsys, "regularize", "--from", "tiny", "--config", str(f)),
        "control.toml: key 'lambda' is outside [contrastive]; put it under [contrastive]",
    )
    assert Registry.open(ws).list_runs() == []


# -- an error names the option when the option is wrong, the file when the file is (item 14) ------
def test_a_bad_option_is_blamed_on_the_option_and_a_bad_file_value_on_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[contrastive]\nn_chains = 8\n", encoding="utf-8")
    with pytest.raises(CrmseError, match=r"^--lambda must be in \[0, 1000000\], got -1") as caught:
        load_config(ContrastiveConfig, good, lambda_=-1.0, **CONTRASTIVE)  # type: ignore[arg-type]
    assert "good.toml" not in str(caught.value)
    with pytest.raises(CrmseError, match=r"^--chains must be in \[1, 1000000\], got 0"):  # its recorded flag
        load_config(ContrastiveConfig, good, n_chains=0, **CONTRASTIVE)  # type: ignore[arg-type]
    with pytest.raises(CrmseError, match=r"^--temperature-K must be a finite number, got nan"):
        load_config(SampleConfig, None, temperature_K=float("nan"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[contrastive]\nlambda = -1.0\n", encoding="utf-8")
    with pytest.raises(CrmseError, match=r"bad\.toml: lambda must be in \[0, 1000000\]"):
        load_config(ContrastiveConfig, bad, seed=3, **CONTRASTIVE)  # type: ignore[arg-type]
    # A conflict of the file with an option names both.
    both = tmp_path / "both.toml"
    both.write_text("[sample]\nprocesses = 2\n", encoding="utf-8")
    with pytest.raises(CrmseError, match=r"both\.toml and the options given: --processes 2 .*--device"):
        load_config(SampleConfig, both, section="sample", device="cuda")
    # The checks of __post_init__ (not only the range table) blame the same way.
    words = tmp_path / "words.toml"
    words.write_text('[sample]\nintegrator = "leapfrog"\n', encoding="utf-8")
    with pytest.raises(CrmseError, match=r"^\S*words\.toml: integrator must be one of"):
        load_config(SampleConfig, words, section="sample")
    with pytest.raises(CrmseError, match=r"^--integrator must be one of .*got 'leapfrog'"):
        load_config(SampleConfig, None, integrator="leapfrog")


def test_regularize_names_the_option_not_the_config_file_beside_it(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRMSE_HOME", str(ws.home))
    f = tmp_path / "x.toml"
    f.write_text("[contrastive]\nn_chains = 8\n", encoding="utf-8")
    base = ("regularize", "--from", "tiny", "--config", str(f))
    line = one_line_error(cli_main(monkeypatch, capsys, *base, "--lambda", "-1"), "--lambda must be")
    assert "x.toml" not in line
    line = one_line_error(
        cli_main(monkeypatch, capsys, *base, "--chains", "0"), "--chains must be in [1, 1000000], got 0"
    )
    assert "x.toml" not in line
    line = one_line_error(cli_main(monkeypatch, capsys, *base, "--warmup", "-2"), "--warmup must be >= 0")
    f.write_text("[contrastive]\nn_chains = 0\n", encoding="utf-8")
    one_line_error(
        cli_main(monkeypatch, capsys, *base, "--lambda", "0.1"), "x.toml: n_chains must be in [1, 1000000]"
    )


def test_every_settings_option_is_named_as_the_user_typed_it() -> None:
    """The option an error names (the field's flag: ``--`` + its key with dashes, or its alias) exists."""
    from crmse_cli.cli import app as app_module
    from crmse_cli.settings import flag

    app_module._register()
    root = typer.main.get_command(app_module.app)
    for command, cls in (
        ("sample", SampleConfig),
        ("regularize", ContrastiveConfig),
        ("diagnose", DiagnoseConfig),
    ):
        names = {f.name for f in dataclasses.fields(cls)}
        seen = 0
        for p in root.commands[command].params:  # type: ignore[attr-defined]
            field = str(p.name)
            if field in names:
                seen += 1
                assert flag(cls, field) in p.opts, p.opts
        assert seen >= 5, command


# -- crmse diagnose goes through the validation table (item 5) ------------------------------------
@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--temperature-K", "nan", "--temperature-K must be a finite number, got nan"),
        ("--temperature-K", "inf", "--temperature-K must be a finite number, got inf"),
        ("--temperature-K", "-100", "--temperature-K must be in (0, 100000], got -100"),
        ("--temperature-K", "0", "--temperature-K must be in (0, 100000], got 0"),
        ("--max-test-frames", "-5", "--max-test-frames must be >= 1, got -5"),
        ("--max-test-frames", "0", "--max-test-frames must be >= 1, got 0"),
        ("--soft-modes", "0", "--soft-modes must be in [1, 1000000], got 0"),
        ("--stiff-modes", "-1", "--stiff-modes must be in [1, 1000000], got -1"),
        ("--seed", "-1", "--seed must be >= 0, got -1"),
    ],
)
def test_diagnose_options_are_validated_before_any_run(
    ws: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
    message: str,
) -> None:
    from crmse_cli.registry.store import Registry

    monkeypatch.setenv("CRMSE_HOME", str(ws.home))
    argv = ("diagnose", "model", "--against", "mse", option, value)
    one_line_error(cli_main(monkeypatch, capsys, *argv), message)
    assert Registry.open(ws).list_runs() == []


def test_diagnose_config_checks_its_fields() -> None:
    from crmse_cli.validate import ConfigError

    for bad in (
        {"temperature_K": float("nan")},
        {"temperature_K": -100.0},
        {"max_test_frames": 0},
        {"max_collapsed_frames": -1},
        {"fmax": 0.0},
        {"soft_modes": 2.5},
        {"mass_weighted": "yes"},
    ):
        with pytest.raises(ConfigError):
            DiagnoseConfig(**bad)  # type: ignore[arg-type]
    assert DiagnoseConfig(temperature_K=None).temperature_K is None  # None: the samples' temperature
