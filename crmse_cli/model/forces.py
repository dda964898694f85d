"""Forces from energies: THE ONLY place in crmse where energies are differentiated.

Forces are F = -dU/dx by autograd. ``create_graph=True`` keeps the graph of the forces so a
force loss can be back-propagated to the weights (training); ``create_graph=False`` is the
samplers' hot path and returns detached tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from crmse_cli.model.compiled import CompiledForceField, compile_unavailable, log_eager, use_cache_dir
from crmse_cli.model.graph import choose_layout, dense_pair_vectors, make_graph, within_cutoff
from crmse_cli.model.potential import Potential

ForceFn = Callable[[Tensor], tuple[Tensor, Tensor]]
"""positions (B, N, 3) Å -> (energy (B,) kcal/mol, forces (B, N, 3) kcal/mol/Å)."""

# Dense pair-tensor entries (replicas x N x N) evaluated at once. Bigger batches are split into
# chunks so that the largest temporaries (pairs x 3F floats) stay below glibc's 32 MiB mmap
# threshold; measured (benchmarks/bench_model.py): 512 aspirin replicas in one piece ran at half
# the rate of chunks of 74, while chunks below ~30 replicas lose to per-operation overhead.
DEFAULT_MAX_PAIRS = 32768


def forces_from_energy(energy: Tensor, positions: Tensor, *, create_graph: bool) -> Tensor:
    """-dE/dx of a batch of energies.

    Args:
        energy: (B,) energies, kcal/mol, computed from ``positions``.
        positions: tensor with ``requires_grad`` that ``energy`` was computed from, Å.
        create_graph: keep the graph of the result (True for force losses; the energy graph is
            then retained too, so the energy may still be back-propagated).

    Returns:
        Forces with the shape of ``positions``, kcal/mol/Å. Structures of a batch are
        independent, so differentiating the sum gives each structure's own forces.
    """
    (grad,) = torch.autograd.grad(
        energy,
        positions,
        grad_outputs=torch.ones_like(energy),
        create_graph=create_graph,
        retain_graph=create_graph,
    )
    return -grad


def _chunk_size(positions: Tensor, layout: str, cutoff_A: float, max_pairs: int | None) -> int:
    """Replicas per chunk: at most ``max_pairs`` pair entries per chunk.

    A replica has N^2 pair entries in the dense layout; in the sparse one, the first replica's
    pairs inside the cutoff stand for every replica's.
    """
    n_structures, n_atoms = int(positions.shape[0]), int(positions.shape[1])
    if max_pairs is None:
        return n_structures
    pairs = n_atoms * n_atoms
    if layout == "sparse" and n_structures > 0:
        pairs = int(within_cutoff(dense_pair_vectors(positions[:1].detach()), cutoff_A).sum())
    return max(1, min(n_structures, max_pairs // max(pairs, 1)))


def energy_and_forces(
    potential: Potential,
    positions: Tensor,
    species: Tensor,
    *,
    create_graph: bool = False,
    max_pairs: int | None = DEFAULT_MAX_PAIRS,
    layout: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Energies and forces of B replicas of one molecule.

    Args:
        potential: the model.
        positions: (B, N, 3) Å, in the potential's dtype.
        species: (N,) atomic numbers.
        create_graph: False (sampling): outputs are detached and ``positions`` is not touched.
            True (training): outputs stay differentiable with respect to the weights (and to
            ``positions`` if it already requires grad).
        max_pairs: evaluate at most this many pair entries at once (replicas x N^2 in the dense
            layout, replicas x pairs inside the cutoff in the sparse one; None: all).
        layout: pair layout (``graph.choose_layout``): "auto" (by molecule size), "dense" or
            "sparse". Both give the same energies and forces to round-off.

    Returns:
        energy (B,) kcal/mol and forces (B, N, 3) kcal/mol/Å.
    """
    if create_graph and positions.requires_grad:
        pos = positions
    else:
        pos = positions.detach().requires_grad_(True)
    n_structures = int(pos.shape[0])
    chosen = choose_layout(int(pos.shape[1]), layout)
    size = _chunk_size(pos, chosen, potential.config.cutoff_A, max_pairs)
    energies, forces = [], []
    for start in range(0, n_structures, size):
        part = pos[start : start + size]
        energy = potential(make_graph(part, species, chosen))
        force = forces_from_energy(energy, pos if size == n_structures else part, create_graph=create_graph)
        energies.append(energy)
        forces.append(force)
    energy, force = (
        (energies[0], forces[0]) if len(energies) == 1 else (torch.cat(energies), torch.cat(forces))
    )
    if not create_graph:
        return energy.detach(), force.detach()
    return energy, force


def force_field(
    potential: Potential,
    species: Tensor,
    *,
    max_pairs: int | None = DEFAULT_MAX_PAIRS,
    layout: str = "auto",
    compiled: bool = False,
    cache_dir: Path | None = None,
) -> ForceFn:
    """The sampler's ``force_fn``: positions (B, N, 3) -> detached (energy (B,), forces (B, N, 3)).

    ``max_pairs`` and ``layout`` as in :func:`energy_and_forces`. ``compiled``: the same
    function through ``torch.compile`` (``model/compiled.py``) where the potential's device
    and architecture allow it; otherwise, or if compilation fails, this eager one, with one
    logged line saying why. ``cache_dir``: where the compiled kernels are kept for later
    processes (``compiled.use_cache_dir``; None: inductor's default).
    """
    choose_layout(int(species.shape[0]), layout)  # an unknown layout fails here, not mid-run

    def force_fn(positions: Tensor) -> tuple[Tensor, Tensor]:
        return energy_and_forces(
            potential, positions, species, create_graph=False, max_pairs=max_pairs, layout=layout
        )

    if not compiled:
        return force_fn
    reason = compile_unavailable(potential.shift.device, potential)
    if reason is not None:
        log_eager(reason)
        return force_fn
    if cache_dir is not None:
        use_cache_dir(cache_dir)
    return CompiledForceField(potential, species, force_fn, max_pairs=max_pairs, layout=layout)


def laplacian(potential: Potential, positions: Tensor, species: Tensor) -> Tensor:
    """Exact Laplacian (trace of the Hessian) of the energy of each replica.

    Uses 3N backward passes through the force graph (fine for N <= ~21 atoms); replicas are
    independent, so each pass serves the whole batch.

    Args:
        potential: the model.
        positions: (B, N, 3) Å.
        species: (N,) atomic numbers.

    Returns:
        (B,) sum_i,a d^2U / dx_ia^2 in kcal/mol/Å^2, detached.
    """
    return laplacian_of(lambda pos: potential(make_graph(pos, species)), positions)


def laplacian_of(energy_fn: Callable[[Tensor], Tensor], positions: Tensor) -> Tensor:
    """Exact Laplacian of ``energy_fn`` at each of B structures (3N backward passes for the batch).

    Args:
        energy_fn: positions (B, N, 3) Å -> energies (B,) kcal/mol (structures independent).
        positions: (B, N, 3) Å.

    Returns:
        (B,) sum_i,a d^2U / dx_ia^2 in kcal/mol/Å^2, detached.
    """
    pos = positions.detach().requires_grad_(True)
    energy = energy_fn(pos)
    (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=True)
    flat = grad.reshape(grad.shape[0], -1)
    total = torch.zeros_like(energy)
    for k in range(flat.shape[1]):
        (second,) = torch.autograd.grad(flat[:, k].sum(), pos, retain_graph=True)
        total = total + second.reshape(flat.shape)[:, k]
    return total.detach()


def largest_curvature(
    energy_fn: Callable[[Tensor], Tensor], position: Tensor, *, iterations: int = 50, seed: int = 0
) -> float:
    """Largest |eigenvalue| of the Hessian of ``energy_fn`` at one structure, by power iteration.

    Uses Hessian-vector products (double backward), never the full Hessian.

    Args:
        energy_fn: positions (B, N, 3) Å -> energies (B,) kcal/mol.
        position: (N, 3) Å.
        iterations: power-iteration steps.
        seed: seed of the start vector.

    Returns:
        k_max in kcal/mol/Å^2.
    """
    pos = position.detach()[None].clone().requires_grad_(True)
    energy = energy_fn(pos)
    (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=True)
    gen = torch.Generator(device=pos.device).manual_seed(seed)
    v = torch.randn(pos.shape, generator=gen, dtype=pos.dtype, device=pos.device)
    v = v / v.norm()
    value = 0.0
    for _ in range(iterations):
        (hv,) = torch.autograd.grad(grad, pos, grad_outputs=v, retain_graph=True)
        value = float((hv * v).sum())
        norm = hv.norm()
        if not torch.isfinite(norm) or float(norm) == 0.0:
            break
        v = hv / norm
    return abs(value)


EnergyFn = Callable[[Tensor], Tensor]
"""positions (B, N, 3) Å -> energy (B,) kcal/mol, differentiable with respect to the positions."""


def potential_energy_fn(potential: Potential, species: Tensor) -> EnergyFn:
    """The differentiable energy callable of a potential for one molecule (for :func:`hessian`)."""

    def energy_fn(positions: Tensor) -> Tensor:
        out: Tensor = potential(make_graph(positions, species))
        return out

    return energy_fn


def hessian(energy_fn: EnergyFn, positions: Tensor) -> Tensor:
    """Exact Cartesian Hessian d^2U / dx dx of one structure, by autograd of the forces.

    The forces come from :func:`forces_from_energy` with ``create_graph=True``; each of the 3N
    rows is one more backward pass (fine for N <= ~30 atoms). Run it in float64: the soft
    torsional eigenvalues are ~1e-3 of the stiff ones.

    Args:
        energy_fn: positions (B, N, 3) -> energies (B,), e.g. :func:`potential_energy_fn`.
        positions: (N, 3) Å.

    Returns:
        (3N, 3N) kcal/mol/Å^2, symmetrised, detached.
    """
    pos = positions.detach().reshape(1, -1, 3).requires_grad_(True)
    force = forces_from_energy(energy_fn(pos), pos, create_graph=True).reshape(-1)
    rows = []
    for k in range(force.shape[0]):
        (grad,) = torch.autograd.grad(-force[k], pos, retain_graph=k + 1 < force.shape[0])
        rows.append(grad.reshape(-1))
    h = torch.stack(rows)
    return (0.5 * (h + h.T)).detach()
