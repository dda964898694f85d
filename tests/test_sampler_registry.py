"""The sampler registry (crmse_cli/sampling/kinds.py): one table of samplers, one build function.

A toy sampler defined here and registered with one line runs in ``crmse sample`` and as the CRMSE
chains of ``crmse regularize``; the built-in kinds agree with their classes; and a short seeded run
of every sampler and of the chains gives, bit for bit, the numbers the code before the registry
gave (tests/fixtures/sampler_golden.npz, written by that code).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import pytest
import torch
from synthetic import cli_main, make_workspace, tiny_pretrain

from crmse_cli.errors import CrmseError
from crmse_cli.sampling.chains import PersistentChains
from crmse_cli.sampling.kinds import (
    REGISTRY,
    SamplerKind,
    SamplerSettings,
    build_sampler,
    chain_sampler_names,
    register,
    sampler_kind,
    sampler_names,
    unregister,
)
from crmse_cli.sampling.mala import mala_steps
from crmse_cli.sampling.observers import ForceFn, Sampler
from crmse_cli.sampling.shard import ReplicaRows
from crmse_cli.sampling.ula import ula_steps
from crmse_cli.workspace import Workspace

GOLDEN = Path(__file__).parent / "fixtures" / "sampler_golden.npz"


# -- a toy sampler: deterministic gradient descent, the whole of what a new sampler needs ---------


@dataclass(frozen=True)
class ToyState:
    positions: torch.Tensor
    energy: torch.Tensor
    forces: torch.Tensor
    step: int = 0
    time_fs: float = math.nan


class ToySampler(Sampler[ToyState]):
    """x <- x + (eta beta) F(x): no noise, so a toy, but a sampler by the registry's contract."""

    steps_taken: ClassVar[int] = 0

    def __init__(self, force_fn: ForceFn, step_A2: float) -> None:
        super().__init__()
        self.force_fn, self.step_A2 = force_fn, step_A2

    @classmethod
    def from_settings(
        cls,
        force_fn: ForceFn,
        settings: SamplerSettings,
        *,
        generator: torch.Generator,
        species: Sequence[int] | np.ndarray | None = None,
        dtype: torch.dtype | None = None,
        rows: ReplicaRows | None = None,
    ) -> Self:
        return cls(force_fn, settings.eta_A2)

    def init_state(self, positions: torch.Tensor) -> ToyState:
        x = positions.detach().clone()
        energy, forces = self.force_fn(x)
        return ToyState(x, energy.detach(), forces.detach())

    def step(self, state: ToyState) -> ToyState:
        type(self).steps_taken += 1
        x = state.positions + self.step_A2 * state.forces
        energy, forces = self.force_fn(x)
        return ToyState(x, energy.detach(), forces.detach(), state.step + 1)


TOY = SamplerKind("toy", f"{__name__}:ToySampler", has_time=False, chains=True, help="a test's toy")


@pytest.fixture
def toy() -> Iterator[SamplerKind]:
    register(TOY)  # the one line a new sampler needs
    ToySampler.steps_taken = 0
    yield TOY
    unregister(TOY.name)  # the rest of the session sees the shipped samplers only


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with the synthetic dataset and the tiny pretrain run (made once)."""
    ws = make_workspace(tmp_path_factory.mktemp("toy") / "home")
    tiny_pretrain(ws)
    return ws.home


@pytest.fixture
def ws(pretrained: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.delenv("CRMSE_DB_URL", raising=False)
    monkeypatch.setenv("CRMSE_HOME", str(pretrained))
    return Workspace(pretrained)


def test_a_toy_sampler_registered_in_one_line_runs_in_crmse_sample(
    toy: SamplerKind, ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from crmse_cli.registry.store import Registry

    args = (
        "--integrator",
        "toy",
        "--replicas",
        "3",
        "--steps",
        "8",
        "--record-every",
        "2",
        "--eta-A2",
        "1e-4",
    )
    code, _, err = cli_main(monkeypatch, capsys, "sample", "tiny", *args, "--name", "toy-sample")
    assert code == 0, err
    assert ToySampler.steps_taken == 8
    reg = Registry.open(ws)
    run = reg.get_run("toy-sample")
    assert run.status == "completed" and run.config["integrator"] == "toy"
    (art,) = reg.artifacts(run.id, kind="samples")
    assert art.meta["integrator"] == "toy"
    z = np.load(art.path)
    assert z["positions"].shape[:2] == (5, 3) and np.isnan(z["time_fs"]).all()  # steps 0, 2, ..., 8
    final = reg.final_metrics(run.id)
    assert "simulated_steps" in final and "simulated_ps" not in final  # no physical time: steps


def test_a_toy_sampler_registered_in_one_line_moves_the_crmse_chains(
    toy: SamplerKind, ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from crmse_cli.registry.store import Registry

    args = ("--chains", "2", "--steps-per-update", "3", "--updates", "2", "--batch-size", "4")
    code, _, err = cli_main(
        monkeypatch,
        capsys,
        "regularize",
        "--from",
        "tiny",
        *args,
        "--chain-sampler",
        "toy",
        "--name",
        "toy-reg",
    )
    assert code == 0, err
    assert ToySampler.steps_taken == 2 * 3  # K steps per update, every update
    run = Registry.open(ws).get_run("toy-reg")
    assert run.status == "completed" and run.config["contrastive"]["chain_sampler"] == "toy"


def test_without_the_line_the_toy_is_refused_in_one_line(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli_main(monkeypatch, capsys, "sample", "tiny", "--integrator", "toy")
    assert code == 2 and "'toy' is not one of langevin, ula, mala" in err
    with pytest.raises(CrmseError, match="unknown sampler 'toy'; registered: langevin, ula, mala"):
        sampler_kind("toy")


def test_only_chain_kinds_are_chain_samplers(monkeypatch: pytest.MonkeyPatch) -> None:
    from crmse_cli.train.contrastive_config import ContrastiveConfig

    assert sampler_names() == ("langevin", "ula", "mala")
    assert chain_sampler_names() == ("ula", "mala")
    with pytest.raises(ValueError, match="chain_sampler must be one of ula, mala"):
        ContrastiveConfig(chain_sampler="langevin")
    with pytest.raises(ValueError, match="chain sampler must be one of ula, mala, got 'langevin'"):
        PersistentChains(torch.zeros(2, 3, 3), 2, torch.Generator(), sampler="langevin")
    monkeypatch.setitem(REGISTRY, "md-only", SamplerKind("md-only", "m:C", has_time=True, chains=False))
    assert "md-only" in sampler_names() and "md-only" not in chain_sampler_names()


def test_a_name_is_registered_once_and_a_target_names_module_and_class() -> None:
    with pytest.raises(CrmseError, match="'ula' is registered already"):
        register(SamplerKind("ula", "crmse_cli.sampling.ula:ULA", has_time=False, chains=True))
    with pytest.raises(CrmseError, match="target must be 'module:Class'"):
        register(SamplerKind("nameless", "crmse_cli.sampling.ula.ULA", has_time=False, chains=True))
    assert "nameless" not in REGISTRY


def harmonic(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (2.0 * x**2).sum(dim=(1, 2)), -4.0 * x


@pytest.mark.parametrize("name", ["langevin", "ula", "mala"])
def test_each_shipped_kind_says_what_its_class_does(name: str) -> None:
    """has_time: the states carry finite fs; metropolis: the sampler reports an acceptance."""
    kind = sampler_kind(name)
    settings = SamplerSettings(temperature_K=300.0, eta_A2=1e-3)
    sampler = build_sampler(
        name, harmonic, settings, generator=torch.Generator().manual_seed(0), species=[6, 1]
    )
    assert isinstance(sampler, kind.sampler_class())
    x0 = 0.1 * torch.randn((2, 2, 3), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    state = sampler.advance(sampler.init_state(x0), 3)
    assert state.step == 3 and math.isfinite(state.time_fs) == kind.has_time
    assert math.isfinite(sampler.acceptance(state)) == kind.metropolis
    assert bool(torch.isfinite(sampler.kinetic_temperature(state)).all()) == kind.has_time


# -- the same numbers as before the registry --------------------------------------------------


def _quartic(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """U = sum 2 x^2 + 0.5 x^4, kcal/mol (the golden file's potential; forces elementwise)."""
    return (2.0 * x**2 + 0.5 * x**4).sum(dim=(1, 2)), -(4.0 * x + 2.0 * x**3)


def test_seeded_runs_give_the_numbers_of_the_code_before_the_registry() -> None:
    """tests/fixtures/sampler_golden.npz was written by main at 9a218bf (LangevinBAOAB, ULA, MALA built
    by hand, ula_steps/mala_steps and PersistentChains.move with their own loops): every array
    must come back bit for bit through build_sampler and the chains that now drive a Sampler."""
    ref = np.load(GOLDEN)
    x0 = torch.as_tensor(ref["x0"])
    masses = torch.tensor([1.008, 12.011, 15.999, 1.008], dtype=torch.float64)
    got: dict[str, np.ndarray] = {}

    def gen(seed: int = 7) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    md = SamplerSettings(temperature_K=300.0, timestep_fs=0.5, friction_per_fs=0.01)
    species = [1, 6, 8, 1]  # ASE's masses of H, C, O are the golden run's: checked
    s = build_sampler("langevin", _quartic, md, generator=gen(), species=species)
    assert torch.equal(s.masses_amu, masses)
    st = s.run(s.init_state(x0), 25)
    got["langevin_positions"], got["langevin_velocities"] = st.positions.numpy(), st.velocities.numpy()
    s = build_sampler("langevin", _quartic, md, generator=gen(), species=species, rows=ReplicaRows(1, 3, 3))
    got["langevin_rows_positions"] = s.run(s.init_state(x0[1:3]), 25).positions.numpy()
    s = build_sampler("ula", _quartic, SamplerSettings(temperature_K=300.0, eta_A2=1e-3), generator=gen())
    got["ula_positions"] = s.run(s.init_state(x0), 25).positions.numpy()
    s = build_sampler("mala", _quartic, SamplerSettings(temperature_K=300.0, eta_A2=2e-2), generator=gen())
    st = s.run(s.init_state(x0), 25)
    got["mala_positions"], got["mala_accepted"] = st.positions.numpy(), st.accepted.numpy()
    got["ula_steps_positions"] = ula_steps(
        _quartic, x0, 25, eta_A2=1e-3, temperature_K=300.0, generator=gen()
    )[0].numpy()
    p, _, a = mala_steps(_quartic, x0, 25, eta_A2=2e-2, temperature_K=300.0, generator=gen())
    got["mala_steps_positions"], got["mala_steps_acceptance"] = p.numpy(), a.numpy()
    for name, eta in (("ula", 1e-3), ("mala", 2e-2)):
        chains = PersistentChains(
            x0, 5, gen(5), sampler=name, eta_A2=eta, temperature_K=300.0, reset_fraction=0.2
        )
        acceptance = []
        for _ in range(3):
            acceptance.append(chains.move(_quartic, 4))
            chains.reset_broken()
        got[f"chains_{name}_positions"] = chains.positions.numpy()
        got[f"chains_{name}_acceptance"] = np.array(acceptance)
    assert set(got) == set(ref.files) - {"x0"}
    for key, value in got.items():
        np.testing.assert_array_equal(value, ref[key], err_msg=key, strict=True)
