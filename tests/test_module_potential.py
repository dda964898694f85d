"""The adapter for any energy module (ModulePotential) and the missing-mace-extra message.

No mace-torch needed: a small analytic module stands in for a user's model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from crmse_cli.data.dataset import Dataset
from crmse_cli.errors import CrmseError
from crmse_cli.model.build import build_potential
from crmse_cli.model.checkpoint import load_checkpoint, save_checkpoint
from crmse_cli.model.config import ModelConfig
from crmse_cli.model.forces import energy_and_forces
from crmse_cli.model.graph import collate, make_graph
from crmse_cli.model.module_potential import ModulePotential, wrap_module


class PairSprings(nn.Module):
    """U = k/2 sum_{i<j} (r_ij - r0)^2 + e0 * N, kcal/mol: forces known in closed form."""

    def __init__(self) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.tensor(3.0, dtype=torch.float64))
        self.r0 = nn.Parameter(torch.tensor(1.2, dtype=torch.float64))
        self.e0 = nn.Parameter(torch.tensor(-5.0, dtype=torch.float64))

    def forward(self, positions: Tensor, species: Tensor) -> Tensor:
        n = positions.shape[1]
        iu = torch.triu_indices(n, n, offset=1)
        d = (positions[:, iu[0]] - positions[:, iu[1]]).norm(dim=-1)
        return 0.5 * self.k * (d - self.r0).pow(2).sum(-1) + self.e0 * n


def _frames(b: int = 3) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(0)
    base = torch.tensor(
        [[0.0, 0.0, 0.0], [1.1, 0.0, 0.0], [0.0, 1.3, 0.0], [0.2, 0.1, 1.0]], dtype=torch.float64
    )
    pos = base + 0.1 * torch.randn(b, 4, 3, generator=gen, dtype=torch.float64)
    return pos, torch.tensor([6, 1, 1, 8])


def _analytic_forces(pos: Tensor, k: float, r0: float) -> Tensor:
    out = torch.zeros_like(pos)
    n = pos.shape[1]
    for i in range(n):
        for j in range(n):
            if i != j:
                v = pos[:, i] - pos[:, j]
                d = v.norm(dim=-1, keepdim=True)
                out[:, i] -= k * (d - r0) * v / d
    return out


def test_wrapped_module_energies_forces_and_both_graph_layouts() -> None:
    pos, species = _frames()
    pot = wrap_module(PairSprings(), [1, 6, 8])
    assert isinstance(pot, ModulePotential) and pot.dtype == torch.float64 and pot.species == [1, 6, 8]
    energy, forces = energy_and_forces(pot, pos, species)
    torch.testing.assert_close(forces, _analytic_forces(pos, 3.0, 1.2), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(energy, PairSprings()(pos, species).detach())
    mixed = pot(collate([(pos[b], species) for b in range(3)]))  # structure by structure
    torch.testing.assert_close(mixed, pot(make_graph(pos, species)))
    # No shift or scale of crmse's on top of the module's own energies.
    assert torch.equal(pot.shift, torch.zeros(3, dtype=torch.float64)) and float(pot.scale) == 1.0
    with pytest.raises(CrmseError, match="float64"):
        pot(make_graph(pos.float(), species))


def test_wrapped_module_checkpoint_roundtrip(tmp_path: Path) -> None:
    pos, species = _frames()
    pot = wrap_module(PairSprings(), [1, 6, 8])
    with torch.no_grad():
        pot.module.k.fill_(4.5)  # trained weights differ from the constructor's
    path = tmp_path / "m.pt"
    save_checkpoint(path, pot, extra={"dataset": "x"})
    raw = torch.load(path, weights_only=True)  # the payload itself stays plain types
    assert raw["format_version"] == 2 and raw["module"]["adapter"] == "module"
    with pytest.raises(CrmseError, match="--trust-code"):  # its module is a pickle: code runs
        load_checkpoint(path)
    loaded, payload = load_checkpoint(path, trust_code=True)
    assert isinstance(loaded, ModulePotential) and payload["extra"]["dataset"] == "x"
    torch.testing.assert_close(loaded(make_graph(pos, species)), pot(make_graph(pos, species)))
    assert float(loaded.module.k.detach()) == 4.5


def test_module_without_fit_reference_cannot_pretrain() -> None:
    pot = wrap_module(PairSprings(), [1, 6, 8])
    with pytest.raises(CrmseError, match="fit_reference"):
        pot.fit_shift_scale(np.array([6, 1, 1, 8]), np.zeros(2))
    with pytest.raises(CrmseError, match="wrap_module"):
        build_potential(ModelConfig(architecture="module"), [1, 6])


def test_missing_mace_extra_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "mace" or m.startswith("mace.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mace", None)  # import mace -> ImportError
    with pytest.raises(CrmseError) as info:
        build_potential(ModelConfig(architecture="mace"), [1, 6, 8])
    assert str(info.value) == "install the mace extra: pip install 'crmse[mace]'"


def test_reference_frames_fall_back_to_all_when_the_split_covers_every_frame() -> None:
    def dataset(train: list[int], test: list[int]) -> Dataset:
        return Dataset(
            name="d",
            species=np.array([1, 1]),
            positions=np.zeros((4, 2, 3)),
            energies=np.zeros(4),
            forces=np.zeros((4, 2, 3)),
            frame_ids=np.arange(4),
            splits={"01": {"train": np.array(train), "test": np.array(test)}},
            meta={},
        )

    assert dataset([0, 1], [2]).reference_indices("01").tolist() == [3]
    assert dataset([0, 1], [2, 3]).reference_indices("01").tolist() == [0, 1, 2, 3]


def test_pretrain_architecture_option_uses_mace_defaults_under_the_file(tmp_path: Path) -> None:
    from crmse_cli.config import load_config
    from crmse_cli.train.pretrain_config import PretrainConfig, architecture_overrides

    cfg = load_config(PretrainConfig, None, **architecture_overrides("mace"))
    model = cfg.model
    assert (model.architecture, model.layers, model.n_rbf, model.envelope_p) == ("mace", 2, 8, 5)
    toml = tmp_path / "c.toml"
    toml.write_text("[model]\nlayers = 1\n")
    cfg = load_config(PretrainConfig, toml, **architecture_overrides("mace", toml))
    assert (cfg.model.layers, cfg.model.n_rbf) == (1, 8)  # the file's value wins
    assert architecture_overrides(None) == {}
