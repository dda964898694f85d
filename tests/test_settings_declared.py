"""Each setting is declared once, on its dataclass field, and every surface reads that declaration.

Issue 26, item 3: the test walks every config dataclass of the package (a dataclass whose
``__post_init__`` calls ``check_config``) and checks that each setting declares its range, flag and
help; that its command takes it under the same name on the command line (its flag), in its TOML
file (its key) and in ``sweep --set`` (its key); and that a setting no option gives is read from
the command's file, so none is out of the user's reach.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pkgutil
import typing
from pathlib import Path
from typing import Any

import pytest
import typer
from synthetic import cli_main, one_line_error

import crmse_cli
from crmse_cli import settings
from crmse_cli.config import load_config
from crmse_cli.errors import CrmseError
from crmse_cli.sampling.sample_config import SampleConfig
from crmse_cli.settings import setting
from crmse_cli.validate import check_config

NO_FILE = "no file"
"""A command without ``--config``: every setting of its config must be an option."""


def _command_configs() -> dict[tuple[str, ...], list[tuple[type, str | None, str | None]]]:
    """command words -> (config class, its TOML table (None: the whole file), its sweep option)."""
    from crmse_cli.data.xtb_config import XtbMDConfig
    from crmse_cli.model.config import ModelConfig
    from crmse_cli.stages.diagnose_config import DiagnoseConfig
    from crmse_cli.stages.regularize_config import RegularizeConfig
    from crmse_cli.stages.stabilize_config import StabilizeConfig
    from crmse_cli.train.budget import BudgetConfig
    from crmse_cli.train.contrastive_config import ContrastiveConfig
    from crmse_cli.train.pretrain_config import PretrainConfig

    return {
        ("sample",): [(SampleConfig, "sample", "--sample-set")],
        ("regularize",): [
            (ContrastiveConfig, "contrastive", "--set"),
            (BudgetConfig, "budget", "--set"),
            (RegularizeConfig, "regularize", "--set"),
        ],
        ("pretrain",): [(PretrainConfig, None, None), (ModelConfig, "model", None)],
        ("diagnose",): [(DiagnoseConfig, NO_FILE, None)],
        ("stabilize",): [(StabilizeConfig, NO_FILE, None)],
        ("fetch", "xtb"): [(XtbMDConfig, NO_FILE, None)],
    }


def _config_classes() -> set[type]:
    """Every config dataclass of the package: its ``__post_init__`` calls ``check_config``."""
    found: set[type] = set()
    for info in pkgutil.walk_packages(crmse_cli.__path__, "crmse_cli."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra (mace-torch, tblite) that is not installed
            continue
        except CrmseError as exc:  # a module that says in one line which extra it needs
            if "is not installed" not in str(exc):
                raise
            continue
        for obj in vars(module).values():
            if not (inspect.isclass(obj) and dataclasses.is_dataclass(obj)) or "__post_init__" not in vars(
                obj
            ):
                continue
            if obj.__module__.startswith("crmse_cli.") and "check_config(" in inspect.getsource(
                obj.__post_init__
            ):
                found.add(obj)
    return found


def problems(cls: type) -> list[str]:
    """What a config class lacks: a setting(...) declaration with range (numbers), flag and help."""
    out = settings.undeclared(cls)
    for f in dataclasses.fields(cls):
        if settings.is_table(cls, f.name) or settings.declared(f) is None:
            continue
        flag = settings.flag(cls, f.name)
        plain = "--" + settings.key(f.name).replace("_", "-")
        if flag != plain and settings.spec(cls, f.name).flag is None:  # pragma: no cover - by construction
            out.append(f"{cls.__name__}.{f.name}: flag {flag} is neither {plain} nor a recorded alias")
    return out


def test_every_config_dataclass_is_one_commands_and_declares_each_setting() -> None:
    wired = {cls for configs in _command_configs().values() for cls, _, _ in configs}
    found = _config_classes()
    assert len(found) >= 9, found
    assert found == wired, f"config classes no command reads: {found - wired}; gone: {wired - found}"
    for cls in sorted(found, key=lambda c: c.__name__):
        assert problems(cls) == [], problems(cls)


def test_a_planted_setting_without_its_declaration_fails() -> None:
    """The walk above fails on a field added without setting(...), or one lacking a range or help."""

    @dataclasses.dataclass(frozen=True)
    class Planted:
        declared_ok: int = setting(1, range="[0, 9]", help="A declared setting.")
        bare: int = 3  # no declaration: what the check exists for
        no_range: float = setting(1.0, help="A number without its range.")
        no_help: str = setting("a", help=" ")

        def __post_init__(self) -> None:
            check_config(self)

    found = problems(Planted)
    assert any("Planted.bare: no setting" in p for p in found), found
    assert any("Planted.no_range: a number without a range" in p for p in found), found
    assert any("Planted.no_help: no help" in p for p in found), found
    assert not any("declared_ok" in p for p in found), found
    with pytest.raises(TypeError, match=r"Planted\.bare is not declared"):  # and it cannot even be built
        Planted()
    grown = dataclasses.make_dataclass("Grown", [("extra_steps", int, 5)], bases=(SampleConfig,), frozen=True)
    assert problems(grown) == ["Grown.extra_steps: no setting(...) declaration"]


def _other_value(cls: type, name: str) -> Any:
    """A value of ``cls``'s setting ``name`` that the class accepts and that is not its default."""
    s = settings.spec(cls, name)
    default = settings.default_of(cls, name)
    hint = typing.get_type_hints(cls)[name]
    kinds = set(typing.get_args(hint)) or {hint}
    if bool in kinds:
        candidates: list[Any] = [not default]
    elif s.choices is not None:
        candidates = [c for c in s.choices if c != default]
    elif str in kinds:
        candidates = ["cuda", "gfn1", "other"]
    else:
        assert s.range is not None
        lo, hi = s.range.lo, s.range.hi
        if int in kinds and float not in kinds:
            candidates = [int(lo) + 1, int(lo), int(lo) + 2]
        else:
            unit = min(hi, lo + 1.0) - lo
            candidates = [lo + unit / 2, lo, lo + unit / 4, (lo + hi) / 2]
    for value in candidates:
        if value == default:
            continue
        try:
            cls(**{name: value})
        except CrmseError:
            continue
        return value
    raise AssertionError(f"no other valid value of {cls.__name__}.{name} among {candidates}")


def _command(words: tuple[str, ...]) -> Any:
    from crmse_cli.cli import app as app_module

    app_module._register()
    cmd: Any = typer.main.get_command(app_module.app)
    for word in words:
        cmd = cmd.commands[word]
    return cmd


def _load_file(words: tuple[str, ...], path: Path) -> dict[type, Any]:
    """What the command's config loader makes of the file at ``path``: config class -> instance."""
    if words == ("regularize",):
        from crmse_cli.cli.regularize_cmd import load_regularize

        cfg = load_regularize(path, {})
        return {type(cfg): cfg, type(cfg.contrastive): cfg.contrastive, type(cfg.budget): cfg.budget}
    if words == ("pretrain",):
        from crmse_cli.train.pretrain_config import PretrainConfig

        p = load_config(PretrainConfig, path)
        return {PretrainConfig: p, type(p.model): p.model}
    return {SampleConfig: load_config(SampleConfig, path, section="sample")}


def _toml(section: str | None, key: str, value: Any) -> str:
    line = f"{key} = {json.dumps(value)}\n"  # numbers, true/false and "strings" read the same in TOML
    return line if section is None else f"[{section}]\n{line}"


def _set(option: str, key: str, value: Any) -> dict[type, Any]:
    from crmse_cli.stages._grid import regularize_config, sample_config

    if option == "--sample-set":
        return {SampleConfig: sample_config({key: value}, seed=0, device="cpu")}
    cfg = regularize_config({key: value}, lambda_=0.015, seed=0, device="cpu")
    return {type(cfg): cfg, type(cfg.contrastive): cfg.contrastive, type(cfg.budget): cfg.budget}


def option_problems(cmd: Any, cls: type, section: str | None, where: str) -> list[str]:
    """How command ``cmd``'s options differ from the declarations of ``cls``'s settings.

    A setting is an option under its flag, feeding the field of its name, with the declared help
    and default (``help_text``; or the bare help where the option itself defaults to the declared
    default, as ``DeviceOption`` does); a ``cli=False`` one is no option and is read from a file.
    """
    out = []
    by_flag = {opt: p for p in cmd.params for opt in [*p.opts, *p.secondary_opts]}
    for f in dataclasses.fields(cls):
        if settings.is_table(cls, f.name):
            continue
        s, flag = settings.spec(cls, f.name), settings.flag(cls, f.name)
        at = f"{where}{cls.__name__}.{f.name}"
        if s.cli:
            option = by_flag.get(flag)
            if option is None:
                out.append(f"{at}: no option {flag}")
            elif option.name != f.name:
                out.append(f"{at}: {flag} feeds {option.name}")
            elif option.help != settings.help_text(cls, f.name) and not (
                option.help == s.help and option.default == settings.default_of(cls, f.name)
            ):
                out.append(f"{at}: {flag}'s help is not the declaration's: {option.help!r}")
        elif flag in by_flag:
            out.append(f"{at}: {flag} is an option but declared cli=False")
        elif section == NO_FILE:
            out.append(f"{at}: neither an option nor in a config file")
    return out


@pytest.mark.parametrize("words", list(_command_configs()), ids=" ".join)
def test_the_cli_the_toml_file_and_set_take_each_setting_by_its_one_name(
    words: tuple[str, ...], tmp_path: Path
) -> None:
    cmd = _command(words)
    for cls, section, set_option in _command_configs()[words]:
        assert option_problems(cmd, cls, section, f"{' '.join(words)}: ") == []
        for f in dataclasses.fields(cls):
            if settings.is_table(cls, f.name):
                continue
            key = settings.key(f.name)
            where = f"{' '.join(words)}: {cls.__name__}.{f.name}"
            value = _other_value(cls, f.name)
            if section != NO_FILE:  # the TOML key
                path = tmp_path / f"{cls.__name__}-{f.name}.toml"
                path.write_text(_toml(section, key, value), encoding="utf-8")
                assert getattr(_load_file(words, path)[cls], f.name) == value, f"{where}: TOML key {key}"
            if set_option is not None and f.name not in ("lambda_", "seed", "device"):  # the grid's own
                assert getattr(_set(set_option, key, value)[cls], f.name) == value, f"{where}: --set {key}"


def test_a_hand_written_pretrain_option_fails() -> None:
    """Pretrain's options come from the declarations: another name or a copied help is caught."""
    from crmse_cli.cli.conventions import setting_option
    from crmse_cli.train.pretrain_config import PretrainConfig as P

    def planted(
        n_train: int | None = setting_option(P, "n_train"),
        epochs: int | None = typer.Option(None, "--max-epochs", help="Epochs."),  # feeds another name
        n_val: int | None = typer.Option(None, "--n-val", help="Validation frames [default: 50]."),
        seed: int | None = setting_option(P, "seed"),
        device: str | None = setting_option(P, "device"),
        max_epochs_typo: float | None = setting_option(P, "max_minutes"),
    ) -> None:
        """A pretrain command written by hand."""

    app = typer.Typer()
    app.command()(planted)
    found = option_problems(typer.main.get_command(app), P, None, "")
    assert found == [
        "PretrainConfig.n_val: --n-val's help is not the declaration's: 'Validation frames [default: 50].'",
        "PretrainConfig.max_epochs: --max-epochs feeds epochs",
        "PretrainConfig.max_minutes: --max-minutes feeds max_epochs_typo",
    ], found
    grown = dataclasses.make_dataclass("Grown", [("warmup_epochs", int, 5)], bases=(P,), frozen=True)
    assert problems(grown) == ["Grown.warmup_epochs: no setting(...) declaration"]


def test_a_bad_setting_names_what_the_user_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One error type (ConfigError), naming the flag, the file and its key, or the --set key."""
    from crmse_cli.stages._grid import regularize_config, sample_config
    from crmse_cli.train.contrastive_config import ContrastiveConfig
    from crmse_cli.validate import ConfigError

    with pytest.raises(CrmseError, match=r"^--set n_updates must be an integer, got 2\.5$"):
        regularize_config({"n_updates": 2.5}, lambda_=0.1, seed=0, device="cpu")
    with pytest.raises(CrmseError, match=r"^--set val_every must be >= 1, got 0$"):
        regularize_config({"val_every": 0}, lambda_=0.1, seed=0, device="cpu")
    with pytest.raises(CrmseError, match=r"^--sample-set integrator must be one of langevin, ula, mala"):
        sample_config({"integrator": "leapfrog"}, seed=0, device="cpu")
    with pytest.raises(ConfigError, match="chain_sampler must be one of ula, mala, got 'x'"):
        ContrastiveConfig(chain_sampler="x")
    home = tmp_path / "home"
    run = ("--home", str(home), "regularize", "--from", "nothing")
    one_line_error(cli_main(monkeypatch, capsys, *run, "--val-every", "0"), "--val-every must be >= 1, got 0")
    f = tmp_path / "r.toml"
    f.write_text("[contrastive]\nn_chains = 8\n[regularize]\nchains_every = 0\n", encoding="utf-8")
    one_line_error(
        cli_main(monkeypatch, capsys, *run, "--config", str(f)), "r.toml: chains_every must be >= 1"
    )
    assert not (home / "crmse.db").exists()
