"""Batched graphs of molecules and the two pair layouts the networks run on.

``make_graph`` batches B replicas of one molecule (the sampler's and trainer's case) and
``collate`` batches different molecules. Both return a dict keyed by ``crmse_cli.keys`` with
every ordered pair i != j of a structure as an edge: molecules are small, so all pairs are kept
and the cutoff envelope zeroes the messages of pairs beyond the cutoff (exactly, value and
gradient). Edge templates are cached per (N, B, device), so the hot path builds no index tensors.

The networks read a graph through a layout (``layout_of``):

- ``DenseLayout`` for ``make_graph`` batches: atom tensors (B, N, ...), pair tensors
  (B, N, N, ...) indexed [structure, receiver i, sender j]. Gathering sender features is a
  broadcast and summing messages a reduction over one axis: no index kernels at all. The
  diagonal i == j is carried along with a zero envelope (N/(N-1) extra work).
- ``SparseLayout`` for anything else: atom tensors (A, ...), pair tensors (E, ...), with
  ``index_select`` / ``index_add`` over ``EDGE_INDEX``.

Both expose the same operations, so each network is written once. Measured on one CPU thread
(PaiNN, F = 64, energy + forces, structures/s): ethanol x 128: dense 2560, edge list 2080,
edge list filtered by the cutoff 2190; aspirin x 32 (72% of its pairs inside 5 Å): dense 605,
edge list 414, filtered 596. So small same-molecule batches run dense, and the sparse layout
filters its edges by the cutoff.

The dense layout's cost grows as N^2 per replica, the cutoff-filtered edge list's as N times
the neighbours inside the cutoff (bounded by the density), so ``make_graph`` picks the sparse
layout above ``DENSE_MAX_ATOMS`` atoms (``layout="dense"`` / ``"sparse"`` overrides it). For
such a batch the neighbour list comes from the (B, N, N) squared distances without autograd:
O(N^2) comparisons, a small share of the O(N k) network (``benchmarks/bench_layouts.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from crmse_cli import keys
from crmse_cli.errors import CrmseError, DataError

Graph = dict[str, Any]
"""A batch: ``keys`` fields (tensors and the int ``N_STRUCTURES``) plus optional ``DENSE_N_ATOMS``."""

DENSE_N_ATOMS = "dense_n_atoms"  # int N: the batch is N_STRUCTURES replicas of one N-atom molecule
PAIR_LAYOUT = "pair_layout"  # "dense" | "sparse": the layout make_graph chose for the networks

LAYOUTS = ("auto", "dense", "sparse")
# Replicas of molecules up to this many atoms run in the dense layout, larger ones in the
# cutoff-filtered edge list. Measured crossover (benchmarks/bench_layouts.py, PaiNN 64x3 float32,
# 5 Å cutoff, one thread, energy + forces per replica-step; see docs/results.md, issue 18):
# dense wins up to 21 atoms (aspirin by 9%), ties at 20, sparse wins from 27 (2.4x at 99).
DENSE_MAX_ATOMS = 24


# Cached tensors are built outside inference mode: a template first made under
# torch.inference_mode() would otherwise be an inference tensor, which autograd refuses to save
# when the same template later serves a training step.


@functools.lru_cache(maxsize=64)
@torch.inference_mode(False)
def _template(n_atoms: int, n_structures: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """EDGE_INDEX (2, B N (N-1)) [receiver, sender], receiver-major, and BATCH (B N,)."""
    i, j = torch.meshgrid(torch.arange(n_atoms), torch.arange(n_atoms), indexing="ij")
    off_diagonal = i != j
    pairs = torch.stack([i[off_diagonal], j[off_diagonal]])  # (2, N (N-1)) within one structure
    offsets = torch.arange(n_structures) * n_atoms
    edge_index = (pairs.unsqueeze(1) + offsets.view(1, -1, 1)).reshape(2, -1)
    batch = torch.arange(n_structures).repeat_interleave(n_atoms)
    return edge_index.to(device), batch.to(device)


def _make_keep_mask(n_atoms: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    return (1.0 - torch.eye(n_atoms, dtype=dtype, device=device)).unsqueeze(-1)


_cached_keep_mask = functools.lru_cache(maxsize=64)(torch.inference_mode(False)(_make_keep_mask))


def _keep_mask(n_atoms: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(N, N, 1) mask of the dense layout: 0 on the diagonal (no self pairs), 1 elsewhere.

    Cached in eager mode; under ``torch.compile`` it is built in the graph (a constant there),
    since dynamo cannot use an ``lru_cache`` and warns each user that it traced through one.
    """
    if torch.compiler.is_compiling():
        return _make_keep_mask(n_atoms, device, dtype)
    return _cached_keep_mask(n_atoms, device, dtype)


def _check_molecule(positions: Tensor, species: Tensor, where: str) -> None:
    if positions.shape[-1] != 3:
        raise DataError(
            f"{where}: positions must end in a Cartesian axis of size 3, got shape {tuple(positions.shape)}"
        )
    if species.ndim != 1 or species.shape[0] != positions.shape[-2]:
        raise DataError(
            f"{where}: species must be a 1-D tensor of {positions.shape[-2]} atomic numbers, "
            f"got shape {tuple(species.shape)}"
        )


def choose_layout(n_atoms: int, layout: str = "auto") -> str:
    """The pair layout of a batch of replicas of an ``n_atoms`` molecule: "dense" or "sparse".

    Args:
        n_atoms: atoms per molecule.
        layout: "auto" (dense up to ``DENSE_MAX_ATOMS`` atoms, sparse above), "dense" or "sparse".
    """
    if layout not in LAYOUTS:
        raise CrmseError(f"pair layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if layout == "auto":
        return "dense" if n_atoms <= DENSE_MAX_ATOMS else "sparse"
    return layout


def dense_pair_vectors(positions: Tensor) -> Tensor:
    """(B, N, N, 3) x_j - x_i of (B, N, 3) positions, Å: [structure, receiver i, sender j]."""
    return positions.unsqueeze(1) - positions.unsqueeze(2)


def edge_pair_vectors(positions: Tensor, receiver: Tensor, sender: Tensor) -> Tensor:
    """(E, 3) x_sender - x_receiver of (A, 3) positions over an edge list, Å."""
    return positions.index_select(0, sender) - positions.index_select(0, receiver)


def within_cutoff(vectors: Tensor, cutoff_A: float) -> Tensor:
    """Boolean (...) mask of pair vectors (..., 3) shorter than ``cutoff_A`` (no autograd)."""
    with torch.no_grad():
        return (vectors * vectors).sum(-1) < float(cutoff_A) ** 2


def replica_neighbours(positions: Tensor, cutoff_A: float) -> tuple[Tensor, Tensor]:
    """Neighbour list of B replicas of one molecule: pairs i != j closer than the cutoff.

    Args:
        positions: (B, N, 3) Å.
        cutoff_A: cutoff radius, Å.

    Returns:
        (receiver, sender), each (E,) int64 indices into the flattened (B N) atoms, sorted by
        receiver. Found from the (B, N, N) squared distances without autograd.
    """
    n_atoms = int(positions.shape[1])
    inside = within_cutoff(dense_pair_vectors(positions.detach()), cutoff_A)
    inside &= _off_diagonal(n_atoms, positions.device)
    b, i, j = inside.nonzero(as_tuple=True)
    offset = b * n_atoms
    return offset + i, offset + j


@functools.lru_cache(maxsize=64)
@torch.inference_mode(False)
def _off_diagonal(n_atoms: int, device: torch.device) -> Tensor:
    """(N, N) boolean mask, False on the diagonal."""
    return ~torch.eye(n_atoms, dtype=torch.bool, device=device)


def make_graph(positions: Tensor, species: Tensor, layout: str = "auto") -> Graph:
    """Graph of B replicas of one molecule.

    Args:
        positions: (B, N, 3) Å. ``POSITIONS`` is a (B N, 3) view of it, so forces may be taken
            with respect to this (B, N, 3) tensor.
        species: (N,) atomic numbers (int), shared by all replicas.
        layout: pair layout for the networks (``choose_layout``): "auto", "dense" or "sparse".

    Returns:
        Graph with ``POSITIONS`` (B N, 3), ``SPECIES`` (B N,), ``BATCH`` (B N,),
        ``N_STRUCTURES`` B, ``EDGE_INDEX`` (2, B N (N-1)), ``DENSE_N_ATOMS`` N and
        ``PAIR_LAYOUT``.
    """
    if positions.ndim != 3:
        raise DataError(f"make_graph: positions must have shape (B, N, 3), got {tuple(positions.shape)}")
    _check_molecule(positions, species, "make_graph")
    n_structures, n_atoms = int(positions.shape[0]), int(positions.shape[1])
    chosen = choose_layout(n_atoms, layout)
    edge_index, batch = _template(n_atoms, n_structures, positions.device)
    species = species.to(device=positions.device, dtype=torch.long)
    return {
        keys.POSITIONS: positions.reshape(n_structures * n_atoms, 3),
        keys.SPECIES: species.repeat(n_structures),
        keys.BATCH: batch,
        keys.N_STRUCTURES: n_structures,
        keys.EDGE_INDEX: edge_index,
        DENSE_N_ATOMS: n_atoms,
        PAIR_LAYOUT: chosen,
    }


def collate(molecules: Sequence[tuple[Tensor, Tensor]]) -> Graph:
    """Graph of different molecules, one structure each.

    Args:
        molecules: sequence of (positions (N_i, 3) Å, species (N_i,) atomic numbers).

    Returns:
        Graph with ``POSITIONS`` (A, 3) (the concatenation, differentiable with respect to each
        input), ``SPECIES`` (A,), ``BATCH`` (A,), ``N_STRUCTURES`` and ``EDGE_INDEX``.
    """
    if not molecules:
        raise DataError("collate: no molecules given; pass at least one (positions, species) pair")
    device = molecules[0][0].device
    edges, batches = [], []
    offset = 0
    for b, (pos, spec) in enumerate(molecules):
        if pos.ndim != 2:
            raise DataError(f"collate: molecule {b} positions must have shape (N, 3), got {tuple(pos.shape)}")
        _check_molecule(pos, spec, f"collate: molecule {b}")
        n = int(pos.shape[0])
        template, _ = _template(n, 1, device)
        edges.append(template + offset)
        batches.append(torch.full((n,), b, dtype=torch.long, device=device))
        offset += n
    return {
        keys.POSITIONS: torch.cat([pos for pos, _ in molecules]),
        keys.SPECIES: torch.cat([spec.to(device=device, dtype=torch.long) for _, spec in molecules]),
        keys.BATCH: torch.cat(batches),
        keys.N_STRUCTURES: len(molecules),
        keys.EDGE_INDEX: torch.cat(edges, dim=1),
    }


class DenseLayout:
    """Atoms (B, N, ...) and pairs (B, N, N, ...) [structure, receiver i, sender j]."""

    def __init__(self, graph: Graph) -> None:
        n_atoms = int(graph[DENSE_N_ATOMS])
        pos = graph[keys.POSITIONS]
        self.n_structures = int(graph[keys.N_STRUCTURES])
        self.positions: Tensor = pos.view(self.n_structures, n_atoms, 3)
        self.species: Tensor = graph[keys.SPECIES][:n_atoms]
        self.keep: Tensor | None = _keep_mask(n_atoms, pos.device, pos.dtype)

    def atom_shape(self, n_features: int) -> tuple[int, ...]:
        """Shape of a per-atom feature tensor with ``n_features`` channels."""
        return (self.n_structures, self.positions.shape[1], n_features)

    def embed(self, table: Tensor, index: Tensor) -> Tensor:
        """Rows ``table[index]`` as (1, N, F), broadcastable to (B, N, F).

        Replicas share their initial features, so the first layer's per-atom MLP runs once
        instead of B times; the first message sum broadcasts the features to (B, N, F).
        """
        rows: Tensor = table[index]
        return rows.unsqueeze(0)

    def pair_vectors(self) -> Tensor:
        """(B, N, N, 3) x_j - x_i, Å."""
        return dense_pair_vectors(self.positions)

    def gather(self, h: Tensor) -> Tensor:
        """Sender features h_j, broadcastable against pair tensors: (B, 1, N, F)."""
        return h.unsqueeze(1)

    def receive(self, h: Tensor) -> Tensor:
        """Receiver features h_i, broadcastable against pair tensors: (B, N, 1, F)."""
        return h.unsqueeze(2)

    def reduce(self, m: Tensor) -> Tensor:
        """Sum of pair messages over senders: (B, N, N, F) -> (B, N, F)."""
        return m.sum(2)

    def vector_message(self, w: Tensor | None, u: Tensor | None, q: Tensor, unit: Tensor) -> Tensor:
        """sum_j (w_ij u_j + q_ij unit_ij): w, q (B,N,N,F), u (B,N,3,F), unit (B,N,N,3).

        ``w`` and ``u`` are both given or both None (no vector features yet).
        """
        b, n, _, nf = q.shape
        # The direction term as a batched matmul over senders, (3, N) @ (N, F) per receiver:
        # no (B, N, N, 3, F) temporary, which a broadcast product would write and read back.
        out = torch.bmm(unit.reshape(b * n, n, 3).transpose(1, 2), q.reshape(b * n, n, nf)).view(b, n, 3, nf)
        if u is not None and w is not None:
            # w_ij * u_j is a product in the feature channel, not a matmul; one Cartesian
            # component at a time keeps the temporaries at (B, N, N, F), measured ~5% faster
            # than one (B, N, N, 3, F) broadcast and ~25% faster than einsum's batched matmul.
            out = out + torch.stack([(w * u[:, None, :, c]).sum(2) for c in range(3)], dim=2)
        return out

    def sum_atoms(self, e: Tensor) -> Tensor:
        """Per-structure sums of per-atom values: (B, N) -> (B,)."""
        return e.sum(1)


class SparseLayout:
    """Atoms (A, ...) and pairs (E, ...) over ``EDGE_INDEX`` [receiver, sender]."""

    keep: Tensor | None = None

    def __init__(self, graph: Graph, cutoff_A: float | None = None) -> None:
        self.positions: Tensor = graph[keys.POSITIONS]
        self.species: Tensor = graph[keys.SPECIES]
        self.batch: Tensor = graph[keys.BATCH]
        self.n_structures = int(graph[keys.N_STRUCTURES])
        edge_index: Tensor = graph[keys.EDGE_INDEX]
        n_atoms = graph.get(DENSE_N_ATOMS)
        # Pairs at or beyond the cutoff carry exactly zero messages; dropping them first is
        # exact and pays off as soon as molecules outgrow the cutoff sphere.
        if cutoff_A is not None and n_atoms is not None:
            positions = self.positions.detach().view(self.n_structures, int(n_atoms), 3)
            self.receiver, self.sender = replica_neighbours(positions, cutoff_A)
            return
        if cutoff_A is not None and edge_index.shape[1] > 0:
            inside = within_cutoff(
                edge_pair_vectors(self.positions.detach(), edge_index[0], edge_index[1]), cutoff_A
            )
            if not bool(inside.all()):
                edge_index = edge_index[:, inside]
        self.receiver = edge_index[0]
        self.sender = edge_index[1]

    def atom_shape(self, n_features: int) -> tuple[int, ...]:
        """Shape of a per-atom feature tensor with ``n_features`` channels."""
        return (self.positions.shape[0], n_features)

    def embed(self, table: Tensor, index: Tensor) -> Tensor:
        """Rows ``table[index]``: (A, F)."""
        rows: Tensor = table[index]
        return rows

    def pair_vectors(self) -> Tensor:
        """(E, 3) x_sender - x_receiver, Å."""
        return edge_pair_vectors(self.positions, self.receiver, self.sender)

    def gather(self, h: Tensor) -> Tensor:
        """Sender features h_j: (A, F) -> (E, F)."""
        return h.index_select(0, self.sender)

    def receive(self, h: Tensor) -> Tensor:
        """Receiver features h_i: (A, F) -> (E, F)."""
        return h.index_select(0, self.receiver)

    def _scatter(self, m: Tensor) -> Tensor:
        out = m.new_zeros((self.positions.shape[0],) + tuple(m.shape[1:]))
        return out.index_add(0, self.receiver, m)

    def reduce(self, m: Tensor) -> Tensor:
        """Sum of pair messages over senders: (E, F) -> (A, F)."""
        return self._scatter(m)

    def vector_message(self, w: Tensor | None, u: Tensor | None, q: Tensor, unit: Tensor) -> Tensor:
        """sum_j (w_ij u_j + q_ij unit_ij): w, q (E,F), u (A,3,F), unit (E,3) -> (A,3,F).

        ``w`` and ``u`` are both given or both None (no vector features yet).
        """
        m = unit.unsqueeze(-1) * q.unsqueeze(1)
        if u is not None and w is not None:
            m = m + u.index_select(0, self.sender) * w.unsqueeze(1)
        return self._scatter(m)

    def sum_atoms(self, e: Tensor) -> Tensor:
        """Per-structure sums of per-atom values: (A,) -> (B,)."""
        return e.new_zeros(self.n_structures).index_add(0, self.batch, e)


Layout = DenseLayout | SparseLayout


def layout_of(graph: Graph, cutoff_A: float | None = None) -> Layout:
    """The layout ``graph`` asks for: dense for ``make_graph`` batches of small molecules.

    Args:
        graph: a batch from ``make_graph`` or ``collate``.
        cutoff_A: the model's cutoff in Å; the sparse layout drops pairs beyond it.
    """
    if graph.get(DENSE_N_ATOMS) is not None and graph.get(PAIR_LAYOUT, "dense") == "dense":
        return DenseLayout(graph)
    return SparseLayout(graph, cutoff_A)
