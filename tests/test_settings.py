"""One config path for every command: defaults declared once, then a file, then the options given."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import typer
from synthetic import cli_main, interrupted_regularize, make_workspace, one_line_error, tiny_pretrain

from crmse_cli import defaults
from crmse_cli.config import load_config, with_default
from crmse_cli.data.xtb_config import XtbMDConfig
from crmse_cli.errors import CrmseError
from crmse_cli.stages.diagnose_config import DiagnoseConfig
from crmse_cli.stages.sample_config import SampleConfig
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
    got = load_config(
        ContrastiveConfig, EXAMPLES / "regularize.toml", section="contrastive", aliases={"lambda": "lambda_"}
    )
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
    c = load_config(ContrastiveConfig, flat, section="contrastive", aliases={"lambda": "lambda_"})
    assert (c.lambda_, c.n_chains) == (0.1, 8)
    bad = tmp_path / "bad.toml"
    bad.write_text("[sample]\nreplica = 7\n", encoding="utf-8")
    with pytest.raises(CrmseError, match=r"bad\.toml: unknown key\(s\) replica"):
        load_config(SampleConfig, bad, section="sample")
    with pytest.raises(CrmseError, match="options"):
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
    aliases = {"chains": "n_chains", "updates": "n_updates", "warmup": "warmup_updates"}
    seen = set()
    for p in cmd.params:
        name = aliases.get(p.name, p.name)
        if name in fields:
            seen.add(name)
            assert p.default is None, f"{' '.join(command)} --{p.name} has default {p.default!r}"
            default = dataclasses.asdict(cls())[name]
            if default is not None and "\\[default:" in (p.help or ""):
                assert p.help.endswith(with_default("", cls, name).strip()), p.help
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
