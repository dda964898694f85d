"""The ZBL pair repulsion under a learned potential (model/zbl.py, ``model.pair_repulsion``)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from test_model_helpers import ethanol

from crmse_cli.errors import CrmseError
from crmse_cli.model import ModelConfig, build_potential
from crmse_cli.model.checkpoint import load_checkpoint, save_checkpoint
from crmse_cli.model.forces import energy_and_forces
from crmse_cli.model.graph import make_graph

_POSITIONS, ETHANOL, _, _ = ethanol(1)
START = _POSITIONS[0]
COVALENT_A = {1: 0.31, 6: 0.76, 8: 0.66}  # Cordero et al. 2008, typed here independently of ASE


def _zbl_by_hand(positions: np.ndarray, species: list[int]) -> float:
    """Sum over pairs i < j of the ZBL formula of Ziegler, Biersack and Littmark (1985)."""
    total = 0.0
    for i, j in itertools.combinations(range(len(species)), 2):
        r = float(np.linalg.norm(positions[i] - positions[j]))
        zi, zj = species[i], species[j]
        a = 0.46850 / (zi**0.23 + zj**0.23)  # Å, the universal screening length (as LAMMPS pair zbl)
        x = r / a
        phi = (
            0.18175 * math.exp(-3.19980 * x)
            + 0.50986 * math.exp(-0.94229 * x)
            + 0.28022 * math.exp(-0.40290 * x)
            + 0.02817 * math.exp(-0.20162 * x)
        )
        d = min(r / (COVALENT_A[zi] + COVALENT_A[zj]), 1.0)
        p = 6
        u = 1 - (p + 1) * (p + 2) / 2 * d**p + p * (p + 2) * d ** (p + 1) - p * (p + 1) / 2 * d ** (p + 2)
        total += 14.399645 * 23.060548 * zi * zj / r * phi * u  # eV Å -> kcal/mol Å
    return total


def _pair(architecture: str, repulsion: str) -> torch.nn.Module:
    torch.manual_seed(0)
    config = ModelConfig(
        architecture=architecture, features=8, layers=1, n_rbf=4, dtype="float64", pair_repulsion=repulsion
    )
    return build_potential(config, [1, 6, 8])


def _squeezed() -> torch.Tensor:
    """Three replicas: an ethanol frame, an H pushed to 0.45 Å from C0, two H at 0.3 Å."""
    pos = START.repeat(3, 1, 1)
    pos[1, 3] = pos[1, 0] + torch.tensor([-0.45, 0.0, 0.0], dtype=torch.float64)
    pos[2, 4] = pos[2, 5] + torch.tensor([0.0, 0.3, 0.0], dtype=torch.float64)
    return pos


@pytest.mark.parametrize("architecture", ["painn", "schnet"])
@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_the_repulsion_adds_the_zbl_formula_to_the_same_network(architecture: str, layout: str) -> None:
    plain, zbl = _pair(architecture, "none"), _pair(architecture, "zbl")
    pos = _squeezed()
    added = zbl(make_graph(pos, ETHANOL, layout=layout)) - plain(make_graph(pos, ETHANOL, layout=layout))
    want = [_zbl_by_hand(p.numpy(), ETHANOL.tolist()) for p in pos]
    torch.testing.assert_close(added, torch.tensor(want, dtype=torch.float64), rtol=1e-5, atol=1e-6)
    # Squeezed pairs cost hundreds of kcal/mol; on a real frame only bonds a little inside
    # their covalent sums (O-H) add a fraction of a kcal/mol.
    assert added[0] < 1.0 and added[1] > 100.0 and added[2] > 100.0


def test_forces_are_the_gradient_and_push_squeezed_atoms_apart() -> None:
    zbl = _pair("painn", "zbl")
    pos = _squeezed()
    _, forces = energy_and_forces(zbl, pos, ETHANOL)
    assert torch.isfinite(forces).all()
    # replica 1: H3 sits 0.45 Å on the -x side of C0: pushed further to -x, C0 to +x
    assert forces[1, 3, 0] < -100.0 and forces[1, 0, 0] > 100.0
    # central finite difference on one coordinate of the squeezed H
    h = 1e-5
    plus, minus = pos.clone(), pos.clone()
    plus[1, 3, 0] += h
    minus[1, 3, 0] -= h
    e_plus = zbl(make_graph(plus, ETHANOL))[1]
    e_minus = zbl(make_graph(minus, ETHANOL))[1]
    torch.testing.assert_close(forces[1, 3, 0], -(e_plus - e_minus) / (2 * h), rtol=1e-6, atol=1e-4)


def test_nothing_is_added_beyond_the_summed_covalent_radii() -> None:
    plain, zbl = _pair("painn", "none"), _pair("painn", "zbl")
    pos = (START * 1.1).unsqueeze(0)  # every bond stretched 10%: all pairs beyond their switch
    e0, f0 = energy_and_forces(plain, pos, ETHANOL)
    e1, f1 = energy_and_forces(zbl, pos, ETHANOL)
    torch.testing.assert_close(e1, e0, rtol=0, atol=0)
    torch.testing.assert_close(f1, f0, rtol=0, atol=0)


def test_the_setting_travels_with_the_checkpoint(tmp_path: object) -> None:
    from pathlib import Path

    zbl = _pair("painn", "zbl")
    path = Path(str(tmp_path)) / "zbl.pt"
    save_checkpoint(path, zbl)
    loaded, _ = load_checkpoint(path, dtype="float64")
    assert loaded.config.pair_repulsion == "zbl"
    pos = _squeezed()
    torch.testing.assert_close(loaded(make_graph(pos, ETHANOL)), zbl(make_graph(pos, ETHANOL)))


def test_mace_is_refused_with_one_line() -> None:
    with pytest.raises(CrmseError, match="mace-torch's pair_repulsion"):
        ModelConfig(architecture="mace", pair_repulsion="zbl")


def test_an_unknown_repulsion_is_refused() -> None:
    with pytest.raises(CrmseError, match="pair_repulsion"):
        ModelConfig(pair_repulsion="lj")
