"""The compiled force path: energies and forces of a potential through ``torch.compile``.

One compiled function maps positions (B, N, 3) to (energy (B,), forces (B, N, 3)): the energy
and its gradient with respect to the positions (``torch.func.grad``) are traced into ONE graph,
so inductor fuses the backward pass with the forward one and, under ``torch.no_grad`` (the
samplers), autograd keeps no saved tensors. What would break the graph stays outside it:

- the unknown-species check (it reads a tensor into Python) runs once per batch shape, eagerly,
  through ``SpeciesIndex``; the compiled region gets the checked rows (``Potential.layout_energies``);
- shapes are static (``dynamic=False``): the edge and batch templates of ``make_graph`` are
  inputs built outside, one compilation per batch size (a run has one or two: the chunks of
  ``forces.DEFAULT_MAX_PAIRS``);
- the sparse layout keeps every pair (the cutoff envelope zeroes the far ones exactly) instead of
  a neighbour list whose size depends on the positions.

Compiled kernels are cached on disk by inductor (FX graph cache and AOT autograd cache), in
the folder given to :func:`use_cache_dir` (the workspace's ``cache/torch-compile``), so a second
process reuses them instead of compiling again.

Any failure to compile (no C++ compiler, no triton on a GPU, an inductor error) switches the
force field to the eager path for the rest of the run with ONE logged line saying why; results
agree with the eager path to float32 round-off (``tests/test_compiled.py``). The choice is made
per device (:func:`compile_unavailable`), so the same code serves ``--device cuda``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from crmse_cli import keys
from crmse_cli.errors import CrmseError
from crmse_cli.model.graph import DENSE_N_ATOMS, PAIR_LAYOUT, choose_layout, layout_of, make_graph
from crmse_cli.model.potential import Potential

log = logging.getLogger(__name__)

ForceFn = Callable[[Tensor], tuple[Tensor, Tensor]]

# TORCHINDUCTOR_CACHE_DIR as the user's environment had it when crmse started: inductor writes
# its default into the environment on first use, so it is read here, before that can happen.
_USER_CACHE_DIR = os.environ.get("TORCHINDUCTOR_CACHE_DIR")


def use_cache_dir(folder: Path) -> None:
    """Keep inductor's compiled artifacts in ``folder`` (unless TORCHINDUCTOR_CACHE_DIR is set).

    Turns on the FX graph cache and the AOT autograd cache, so a later process with the same
    model shapes loads the compiled kernels instead of compiling them again.
    """
    if _USER_CACHE_DIR is None:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    functorch_config.enable_autograd_cache = True


def compile_unavailable(device: torch.device | str, potential: torch.nn.Module | None = None) -> str | None:
    """Why the compiled path cannot run on ``device`` for ``potential``, or None when it can.

    Inductor generates C++ on a CPU (a C++ compiler is needed) and triton kernels on a GPU
    (triton must be importable); other device types are not compiled.
    """
    kind = torch.device(device).type
    if potential is not None and not hasattr(potential, "network"):
        return (
            f"a {type(potential).__name__} runs eager: its neighbour list has a size that "
            "depends on the positions (only painn and schnet compile)"
        )
    if kind == "cpu":
        compiler = os.environ.get("CXX") or "c++"
        if shutil.which(compiler) is None and shutil.which("g++") is None:
            return f"no C++ compiler ({compiler}) found on PATH, which inductor needs on a CPU"
        return None
    if kind == "cuda":
        if importlib.util.find_spec("triton") is None:
            return "triton is not installed, which inductor needs on a GPU"
        return None
    return f"inductor does not compile for device type {kind!r}"


def log_eager(reason: str) -> None:
    """The one line that says the forces run eager although compilation was asked for."""
    log.warning("forces run eager, not compiled: %s", reason)


class CompiledForceField:
    """``force_fn``: positions (B, N, 3) Å -> detached (energy (B,) kcal/mol, forces (B, N, 3)).

    Args:
        potential: a PaiNN or SchNet :class:`Potential`.
        species: (N,) atomic numbers of the molecule.
        eager: the eager force field with the same settings (the fallback).
        max_pairs: pair entries per compiled call (replicas x N^2), as in the eager path.
        layout: "auto", "dense" or "sparse" (``graph.choose_layout``).
    """

    def __init__(
        self,
        potential: Potential,
        species: Tensor,
        eager: ForceFn,
        *,
        max_pairs: int | None,
        layout: str,
    ) -> None:
        self.potential = potential
        self.species = species
        self.eager = eager
        self.max_pairs = max_pairs
        self.layout = choose_layout(int(species.shape[0]), layout)
        self.fallback_reason: str | None = None
        self._inputs: dict[tuple[int, torch.device], tuple[Tensor, Tensor, Tensor, Tensor]] = {}
        self._compiled = torch.compile(self._energy_forces, dynamic=False, fullgraph=True)

    def __call__(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """(energy (B,), forces (B, N, 3)) of positions (B, N, 3), detached."""
        if self.fallback_reason is not None:
            return self.eager(positions)
        try:
            return self._run(positions)
        except CrmseError:
            raise
        except Exception as exc:  # noqa: BLE001 - any compiler failure: eager, said once
            self.fall_back(_reason(exc))
            return self.eager(positions)

    def fall_back(self, reason: str) -> None:
        """Run eager from now on; log ``reason`` on one line."""
        self.fallback_reason = reason
        log_eager(reason)

    def _run(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        n_structures, n_atoms = int(positions.shape[0]), int(positions.shape[1])
        size = n_structures
        if self.max_pairs is not None:
            size = max(1, min(n_structures, self.max_pairs // max(n_atoms * n_atoms, 1)))
        energies, forces = [], []
        pos = positions.detach()
        with torch.no_grad():
            for start in range(0, n_structures, size):
                part = pos[start : start + size]
                energy, force = self._compiled(part, *self._static_inputs(part))
                energies.append(energy)
                forces.append(force)
        if len(energies) == 1:
            return energies[0], forces[0]
        return torch.cat(energies), torch.cat(forces)

    def _static_inputs(self, part: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(species, edge index, batch, checked species rows) of a batch of this size.

        Built, and the species checked, once per batch size and device, outside the compiled region.
        """
        key = (int(part.shape[0]), part.device)
        if key not in self._inputs:
            graph = make_graph(part, self.species, self.layout)
            layout = layout_of(graph, None)
            index = self.potential.network.species_index(layout.species)  # CrmseError if unknown
            self._inputs[key] = (graph[keys.SPECIES], graph[keys.EDGE_INDEX], graph[keys.BATCH], index)
        return self._inputs[key]

    def _energy_forces(
        self, positions: Tensor, species: Tensor, edge_index: Tensor, batch: Tensor, index: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The compiled region: energies and -dE/dx of one chunk, in one graph."""
        n_structures, n_atoms = positions.shape[0], positions.shape[1]

        def total(pos: Tensor) -> tuple[Tensor, Tensor]:
            graph = {
                keys.POSITIONS: pos.reshape(n_structures * n_atoms, 3),
                keys.SPECIES: species,
                keys.BATCH: batch,
                keys.N_STRUCTURES: n_structures,
                keys.EDGE_INDEX: edge_index,
                DENSE_N_ATOMS: n_atoms,
                PAIR_LAYOUT: self.layout,
            }
            energy = self.potential.layout_energies(layout_of(graph, None), index)
            return energy.sum(), energy

        grad, energy = torch.func.grad(total, has_aux=True)(positions)
        return energy, -grad


def _reason(exc: BaseException) -> str:
    """``Type: first line`` of the error that made compilation fail (inductor's wrapped one too)."""
    root = exc
    while True:
        inner = getattr(root, "inner_exception", None) or root.__cause__
        if inner is None or inner is root:
            break
        root = inner
    text = str(root).strip()
    line = f"{type(root).__name__}: {text.splitlines()[0] if text else '(no message)'}"
    return line if root is exc else f"{type(exc).__name__} ({line})"
