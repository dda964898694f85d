"""The compiled force path (model/compiled.py): equal to eager, a clean fallback, chosen per device.

Tests named ``test_compile_*`` run inductor (a C++ compiler, seconds to minutes on a loaded
machine the first time; inductor's on-disk cache makes later runs fast). The models are tiny
(8 features, 1 layer) to keep the generated code small.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import warnings
from pathlib import Path

import pytest
import torch

from crmse_cli.errors import CrmseError
from crmse_cli.model import ModelConfig, build_potential
from crmse_cli.model import compiled as compiled_mod
from crmse_cli.model.compiled import CompiledForceField, compile_unavailable, use_cache_dir
from crmse_cli.model.forces import force_field
from crmse_cli.workspace import Workspace

ETHANOL = torch.tensor([6, 6, 8, 1, 1, 1, 1, 1, 1])
START = torch.tensor(
    [
        [-0.72, -0.56, 0.00],
        [0.75, -0.56, 0.00],
        [1.22, 0.78, 0.00],
        [-1.10, -1.58, 0.00],
        [-1.10, -0.05, 0.89],
        [-1.10, -0.05, -0.89],
        [1.12, -1.08, 0.89],
        [1.12, -1.08, -0.89],
        [2.18, 0.74, 0.00],
    ]
)


def _tiny(architecture: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_potential(ModelConfig(architecture=architecture, features=8, layers=1, n_rbf=4), [1, 6, 8])


def _positions(n: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return START + 0.1 * torch.randn((n, 9, 3), generator=gen)


Pair = tuple[torch.Tensor, torch.Tensor]


def _assert_round_off(got: Pair, want: Pair) -> None:
    (e1, f1), (e0, f0) = got, want
    scale_f = float(f0.abs().max())
    assert torch.allclose(f1, f0, rtol=0, atol=1e-5 * scale_f + 1e-6), float((f1 - f0).abs().max())
    assert torch.allclose(e1, e0, rtol=1e-6, atol=1e-5 * float(e0.abs().max()) + 1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["painn", "schnet"])
@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_compile_forces_equal_eager_to_float32_round_off(architecture: str, layout: str) -> None:
    pot = _tiny(architecture)
    eager = force_field(pot, ETHANOL, layout=layout)
    fast = force_field(pot, ETHANOL, layout=layout, compiled=True)
    assert isinstance(fast, CompiledForceField)
    pos = _positions()
    torch._dynamo.utils.warn_once_cache.clear()  # dynamo warns once per process
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _assert_round_off(fast(pos), eager(pos))
    assert fast.fallback_reason is None  # it really ran compiled
    # Nothing in the traced path makes dynamo warn the user (it did for the cached pair mask).
    assert not [w for w in caught if "Dynamo" in str(w.message)], [str(w.message) for w in caught]
    if architecture == "painn" and layout == "dense":
        # Weights change between CRMSE updates: the compiled function reads the current ones.
        with torch.no_grad():
            for p in pot.parameters():
                p.mul_(1.1)
        _assert_round_off(fast(pos), eager(pos))
        assert fast.fallback_reason is None


def test_forced_compilation_failure_falls_back_to_eager_with_one_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import torch._inductor.compile_fx as compile_fx

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("forced failure\nsecond line of a long compiler error")

    torch._dynamo.reset()
    monkeypatch.setattr(compile_fx, "compile_fx", broken)
    pot = _tiny("painn")
    fast = force_field(pot, ETHANOL, compiled=True)
    pos = _positions()
    with caplog.at_level(logging.WARNING, logger=compiled_mod.__name__):
        got = fast(pos)
        again = fast(pos)  # eager from now on, said once
    torch._dynamo.reset()
    want = force_field(pot, ETHANOL)(pos)
    assert torch.equal(got[1], want[1]) and torch.equal(again[1], want[1])
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert lines[0].startswith("forces run eager, not compiled:") and "forced failure" in lines[0]
    assert fast.fallback_reason is not None


def test_unknown_species_are_refused_before_compiling() -> None:
    fast = force_field(_tiny("painn"), torch.tensor([6, 6, 8, 1, 1, 1, 1, 1, 7]), compiled=True)
    with pytest.raises(CrmseError, match=r"atomic number\(s\) \[7\] unknown"):
        fast(_positions())
    assert isinstance(fast, CompiledForceField) and fast.fallback_reason is None


def test_compiled_path_is_chosen_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert compile_unavailable("cpu") is None  # a C++ compiler is on this machine
    monkeypatch.setattr(compiled_mod.shutil, "which", lambda name: None)
    assert "C++ compiler" in str(compile_unavailable(torch.device("cpu")))
    has_triton = importlib.util.find_spec("triton") is not None
    assert (compile_unavailable("cuda:0") is None) == has_triton
    monkeypatch.setattr(compiled_mod.importlib.util, "find_spec", lambda name: None)
    assert "triton" in str(compile_unavailable("cuda"))
    assert "'meta'" in str(compile_unavailable("meta"))


def test_a_device_without_a_compiler_runs_eager_with_one_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(compiled_mod.shutil, "which", lambda name: None)
    with caplog.at_level(logging.WARNING, logger=compiled_mod.__name__):
        fn = force_field(_tiny("painn"), ETHANOL, compiled=True)
    assert not isinstance(fn, CompiledForceField)
    assert [r.getMessage() for r in caplog.records] == [
        "forces run eager, not compiled: no C++ compiler (c++) found on PATH, which inductor needs on a CPU"
    ]


def test_mace_runs_eager_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("mace", reason="mace-torch is not installed (the optional 'mace' extra)")
    torch.manual_seed(0)
    pot = build_potential(ModelConfig(architecture="mace", features=8, layers=1, dtype="float32"), [1, 6, 8])
    with caplog.at_level(logging.WARNING, logger=compiled_mod.__name__):
        fn = force_field(pot, ETHANOL, compiled=True)
    assert not isinstance(fn, CompiledForceField)
    assert len(caplog.records) == 1 and "runs eager" in caplog.records[0].getMessage()
    pos = _positions()
    _assert_round_off(fn(pos), force_field(pot, ETHANOL)(pos))


def test_kernels_are_cached_in_the_workspace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(compiled_mod, "_USER_CACHE_DIR", None)
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)
    monkeypatch.setattr(functorch_config, "enable_autograd_cache", False)
    ws = Workspace(tmp_path, compile_forces=True)
    use_cache_dir(ws.compile_cache_dir)

    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "cache" / "torch-compile")
    assert inductor_config.fx_graph_cache and functorch_config.enable_autograd_cache


def test_sampler_forces_follow_the_workspace(tmp_path: Path) -> None:
    from crmse_cli.stages._models import sampler_forces

    pot = _tiny("painn")
    compiled_ws = Workspace(tmp_path, compile_forces=True)
    assert isinstance(sampler_forces(compiled_ws, pot, ETHANOL), CompiledForceField)
    assert not isinstance(sampler_forces(Workspace(tmp_path), pot, ETHANOL), CompiledForceField)


class _Reached(Exception):
    """Raised by a stand-in stage function: the command got this far."""


@pytest.mark.parametrize(
    ("args", "module", "function"),
    [
        (("sample", "m"), "crmse_cli.stages.sample", "sample"),
        (("regularize", "--from", "m"), "crmse_cli.stages.regularize", "regularize"),
        (("reproduce", "ethanol"), "crmse_cli.stages.reproduce", "reproduce"),
        (("stabilize", "m.model"), "crmse_cli.stages.stabilize", "stabilize"),
    ],
)
def test_compile_flag_reaches_the_stage_of_every_sampling_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: tuple[str, ...], module: str, function: str
) -> None:
    from typer.testing import CliRunner

    from crmse_cli.cli import app as app_module

    seen: list[bool] = []

    def stand_in(ws: Workspace, *a: object, **k: object) -> None:
        seen.append(ws.compile_forces)
        raise _Reached

    monkeypatch.setattr(importlib.import_module(module), function, stand_in)
    app_module._register()
    for flag in ("--compile", "--no-compile", None):
        argv = ["--home", str(tmp_path), *args, *([flag] if flag else [])]
        res = CliRunner().invoke(app_module.app, argv, env={"CRMSE_NO_PROGRESS": "1"})
        assert isinstance(res.exception, _Reached), res.output
    assert seen == [True, False, Workspace(tmp_path).compile_forces]
