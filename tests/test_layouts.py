"""The two pair layouts (dense (B, N, N) and cutoff edge list) compute the same potential."""

from __future__ import annotations

import pytest
import torch
from test_model_helpers import potential

from crmse_cli.errors import CrmseError
from crmse_cli.model import energy_and_forces, force_field, make_graph
from crmse_cli.model import graph as graph_module
from crmse_cli.model.graph import DENSE_MAX_ATOMS, PAIR_LAYOUT, choose_layout, replica_neighbours


def random_molecule(n_atoms: int, n_replicas: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(positions (B, N, 3) float64 Å, species (N,)): atoms at least ~0.8 Å apart, many pairs
    beyond the 5 Å cutoff (a loose cloud of ~1 atom per 5 Å^3 ... 10 Å^3)."""
    gen = torch.Generator().manual_seed(seed)
    species = torch.tensor([1, 6, 8])[torch.randint(0, 3, (n_atoms,), generator=gen)]
    side = (8.0 * n_atoms) ** (1 / 3)
    grid = torch.stack(
        torch.meshgrid(*[torch.arange(int(side / 1.2) + 1, dtype=torch.float64)] * 3, indexing="ij"), -1
    ).reshape(-1, 3)
    cells = grid[torch.randperm(grid.shape[0], generator=gen)[:n_atoms]] * 1.2
    jitter = 0.2 * (torch.rand(n_replicas, n_atoms, 3, generator=gen, dtype=torch.float64) - 0.5)
    return cells + jitter, species


@pytest.mark.parametrize("architecture", ["painn", "schnet"])
@pytest.mark.parametrize("n_atoms", [4, 17, 45])
def test_sparse_and_dense_layouts_agree(architecture: str, n_atoms: int) -> None:
    pot = potential(architecture)
    pos, species = random_molecule(n_atoms, 3, seed=n_atoms)
    d = torch.cdist(pos[0], pos[0])
    if n_atoms > 4:
        assert bool((d > pot.config.cutoff_A).any())  # some pairs lie beyond the cutoff
    e_dense, f_dense = energy_and_forces(pot, pos, species, layout="dense")
    e_sparse, f_sparse = energy_and_forces(pot, pos, species, layout="sparse")
    torch.testing.assert_close(e_sparse, e_dense, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(f_sparse, f_dense, rtol=1e-10, atol=1e-10)
    # Chunked sparse evaluation (a few replicas at a time) is the same computation.
    e_chunk, f_chunk = energy_and_forces(pot, pos, species, layout="sparse", max_pairs=n_atoms)
    torch.testing.assert_close(e_chunk, e_dense, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(f_chunk, f_dense, rtol=1e-10, atol=1e-10)


def test_sparse_and_dense_layouts_agree_in_float32() -> None:
    pot = potential("painn", dtype="float32")
    pos, species = random_molecule(30, 4, seed=1)
    e_dense, f_dense = energy_and_forces(pot, pos.float(), species, layout="dense")
    e_sparse, f_sparse = energy_and_forces(pot, pos.float(), species, layout="sparse")
    torch.testing.assert_close(e_sparse, e_dense, rtol=1e-5, atol=0.0)
    scale = float(f_dense.abs().max())
    torch.testing.assert_close(f_sparse, f_dense, rtol=0.0, atol=1e-5 * scale)


def test_force_loss_gradients_agree_between_layouts() -> None:
    grads = {}
    for layout in ("dense", "sparse"):
        pot = potential("painn")
        pos, species = random_molecule(12, 2, seed=3)
        e, f = energy_and_forces(pot, pos, species, create_graph=True, layout=layout)
        ((f**2).mean() + (e**2).mean()).backward()
        grads[layout] = [p.grad.clone() for p in pot.parameters() if p.grad is not None]
    for g_dense, g_sparse in zip(grads["dense"], grads["sparse"], strict=True):
        torch.testing.assert_close(g_sparse, g_dense, rtol=1e-9, atol=1e-9)


def test_layout_is_chosen_by_size_and_can_be_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_layout(DENSE_MAX_ATOMS) == "dense"
    assert choose_layout(DENSE_MAX_ATOMS + 1) == "sparse"
    assert choose_layout(3, "sparse") == "sparse" and choose_layout(500, "dense") == "dense"
    small, big = torch.zeros(2, 3, 3), torch.zeros(1, DENSE_MAX_ATOMS + 1, 3)
    assert make_graph(small, torch.tensor([1, 1, 8]))[PAIR_LAYOUT] == "dense"
    assert make_graph(big, torch.ones(DENSE_MAX_ATOMS + 1, dtype=torch.long))[PAIR_LAYOUT] == "sparse"
    assert make_graph(small, torch.tensor([1, 1, 8]), layout="sparse")[PAIR_LAYOUT] == "sparse"
    monkeypatch.setattr(graph_module, "DENSE_MAX_ATOMS", 2)
    assert make_graph(small, torch.tensor([1, 1, 8]))[PAIR_LAYOUT] == "sparse"
    with pytest.raises(CrmseError, match="pair layout"):
        choose_layout(9, "csr")
    with pytest.raises(CrmseError, match="pair layout"):
        force_field(potential("painn"), torch.tensor([1, 1, 8]), layout="csr")


def test_replica_neighbours_are_the_pairs_inside_the_cutoff() -> None:
    pos, _ = random_molecule(20, 3, seed=5)
    receiver, sender = replica_neighbours(pos, 5.0)
    flat = pos.reshape(-1, 3)
    expected = set()
    for b in range(3):
        for i in range(20):
            for j in range(20):
                if i != j and float((pos[b, i] - pos[b, j]).norm()) < 5.0:
                    expected.add((20 * b + i, 20 * b + j))
    assert set(zip(receiver.tolist(), sender.tolist(), strict=True)) == expected
    assert len(expected) == receiver.numel()
    assert torch.all(receiver[1:] >= receiver[:-1])  # receiver-major
    assert torch.all((flat[sender] - flat[receiver]).norm(dim=-1) < 5.0)
