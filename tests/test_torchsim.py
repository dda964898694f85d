"""crmse potentials behind torch-sim's ModelInterface (crmse_cli/model/torchsim_model.py).

The wrapper gives crmse's own energies and forces (converted to eV and eV/Å) for a batch of
replicas, for a state of different molecules and for a checkpoint file, and torch-sim's Langevin
driven by it holds its temperature. Skips without the ``torchsim`` extra (torch-sim-atomistic).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("torch_sim", reason="torch-sim is not installed (the optional 'torchsim' extra)")

import torch_sim as ts  # noqa: E402
from synthetic import GEOMETRY_A, SPECIES  # noqa: E402
from torch_sim.models.interface import ModelInterface  # noqa: E402
from torch_sim.units import MetalUnits  # noqa: E402

from crmse_cli.data.geometries import builtin_geometry  # noqa: E402
from crmse_cli.errors import CrmseError  # noqa: E402
from crmse_cli.model import ModelConfig, build_potential  # noqa: E402
from crmse_cli.model.checkpoint import save_checkpoint  # noqa: E402
from crmse_cli.model.forces import energy_and_forces  # noqa: E402
from crmse_cli.model.potential import Potential  # noqa: E402
from crmse_cli.model.torchsim_model import TorchSimModel, replica_state  # noqa: E402
from crmse_cli.sampling.langevin import masses_from_species  # noqa: E402
from crmse_cli.units import EV_PER_KCAL_PER_MOL  # noqa: E402

ETHANOL = torch.tensor(SPECIES)
ETHANOL_A = torch.tensor(GEOMETRY_A, dtype=torch.float32)
_aspirin = builtin_geometry("aspirin")
assert _aspirin is not None
ASPIRIN = torch.tensor(_aspirin[0])
ASPIRIN_A = torch.tensor(_aspirin[1], dtype=torch.float32)


def small_potential(architecture: str = "painn", seed: int = 0) -> Potential:
    torch.manual_seed(seed)
    pot = build_potential(ModelConfig(architecture=architecture, features=16, layers=2, n_rbf=8), [1, 6, 8])
    # Forces of rMD17's size (kcal/mol/Å) rather than an untrained network's tiny ones.
    pot.scale.fill_(30.0)
    return pot.eval()


def replicas(species: torch.Tensor, geometry: torch.Tensor, n: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return geometry + 0.05 * torch.randn((n, *geometry.shape), generator=gen)


def state_of(molecules: list[tuple[torch.Tensor, torch.Tensor]]) -> ts.SimState:
    """A non-periodic SimState of (positions (N, 3) Å, species (N,)) molecules, amu masses."""
    positions = torch.cat([pos for pos, _ in molecules])
    numbers = torch.cat([z for _, z in molecules])
    return ts.SimState(
        positions=positions,
        masses=masses_from_species(numbers).to(positions.dtype),
        cell=torch.eye(3, dtype=positions.dtype).repeat(len(molecules), 1, 1) * 30.0,
        pbc=False,
        atomic_numbers=numbers,
        system_idx=torch.cat([torch.full((len(z),), k) for k, (_, z) in enumerate(molecules)]),
    )


def assert_close_ev(out: torch.Tensor, kcal: torch.Tensor) -> None:
    """float32 round-off: a few ulps of the largest value."""
    ev = kcal * EV_PER_KCAL_PER_MOL
    torch.testing.assert_close(out, ev, rtol=1e-5, atol=1e-5 * float(ev.abs().max()))


@pytest.mark.parametrize("architecture", ["painn", "schnet"])
def test_replica_batch_gives_crmse_energies_and_forces_in_ev(architecture: str) -> None:
    pot = small_potential(architecture)
    pos = replicas(ETHANOL, ETHANOL_A, 5)
    model = TorchSimModel(pot)
    assert isinstance(model, ModelInterface)
    assert (model.dtype, model.device, model.compute_forces) == (torch.float32, torch.device("cpu"), True)
    state = replica_state(pos, ETHANOL, masses_from_species(ETHANOL))
    before = state.positions.clone()
    out = model(state)
    energy, forces = energy_and_forces(pot, pos, ETHANOL)
    assert out["energy"].shape == (5,) and out["forces"].shape == (45, 3)
    assert_close_ev(out["energy"], energy)
    assert_close_ev(out["forces"], forces.reshape(-1, 3))
    assert torch.equal(state.positions, before)  # the state is not modified
    assert not out["forces"].requires_grad


def test_different_molecules_in_one_state(tmp_path: Path) -> None:
    """ethanol, aspirin, ethanol: each system gets its own molecule's energy and forces.

    Through a checkpoint file, as a user would load a trained model.
    """
    pot = small_potential("painn")
    ckpt = tmp_path / "pot.pt"
    save_checkpoint(ckpt, pot, extra={"dataset": "test"})
    model = TorchSimModel(ckpt)
    eth = replicas(ETHANOL, ETHANOL_A, 2)
    asp = replicas(ASPIRIN, ASPIRIN_A, 1)[0]
    out = model(state_of([(eth[0], ETHANOL), (asp, ASPIRIN), (eth[1], ETHANOL)]))
    e_eth, f_eth = energy_and_forces(pot, eth, ETHANOL)
    e_asp, f_asp = energy_and_forces(pot, asp[None], ASPIRIN)
    assert_close_ev(out["energy"], torch.stack([e_eth[0], e_asp[0], e_eth[1]]))
    assert_close_ev(out["forces"], torch.cat([f_eth[0], f_asp[0], f_eth[1]]))


def test_periodic_state_and_unknown_species_are_one_line_errors() -> None:
    model = TorchSimModel(small_potential())
    state = state_of([(ETHANOL_A, ETHANOL)])
    state.pbc = True
    with pytest.raises(CrmseError, match="pbc=False"):
        model(state)
    with pytest.raises(CrmseError, match="9"):  # fluorine: not among the model's species
        model(state_of([(ETHANOL_A, torch.tensor([6, 6, 8, 1, 1, 1, 1, 1, 9]))]))


@pytest.mark.slow
def test_torchsim_langevin_holds_the_temperature() -> None:
    """32 ethanol replicas, 300 steps of torch-sim's BAOAB at 300 K, dt 0.5 fs, gamma 0.05/fs.

    The replicas' mean kinetic temperature over the last 150 steps is within 15% of 300 K (its
    spread here is ~4%): the wrapper drives torch-sim's integrator, and the time, temperature and
    friction conversions into torch-sim's units are right. (A thermostat holds its temperature
    whatever the forces' unit; the tests above check that unit.)
    """
    temperature_K, timestep_fs, friction_per_fs = 300.0, 0.5, 0.05
    model = TorchSimModel(small_potential())
    pos = replicas(ETHANOL, ETHANOL_A, 32)
    fs = MetalUnits.time / 1000.0  # torch-sim's time unit is sqrt(amu Å^2 / eV); MetalUnits.time per ps
    init, update = ts.nvt_langevin(
        model,
        dt=torch.tensor(timestep_fs * fs),
        kT=torch.tensor(temperature_K * MetalUnits.temperature),
        gamma=torch.tensor(friction_per_fs / fs),
        seed=0,
    )
    torch.manual_seed(0)  # torch-sim's O step draws from the global generator
    state = init(replica_state(pos, ETHANOL, masses_from_species(ETHANOL)))
    start = state.positions.clone()
    temps = []
    for step in range(300):
        state = update(state)
        if step >= 150:
            kt = ts.calc_kT(masses=state.masses, momenta=state.momenta, system_idx=state.system_idx)
            temps.append(float(kt.mean()) / MetalUnits.temperature)
    mean_K = sum(temps) / len(temps)
    assert abs(mean_K / temperature_K - 1.0) < 0.15, mean_K
    assert torch.isfinite(state.energy).all()
    assert float((state.positions - start).abs().max()) > 0.1  # the atoms moved: dynamics ran
