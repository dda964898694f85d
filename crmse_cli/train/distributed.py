"""Data-parallel training over processes (``torchrun``): ranks, collectives, one writer.

Under ``torchrun --standalone --nproc-per-node N -m crmse_cli regularize ...`` every process runs
the same command; ``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``.
:meth:`DistContext.from_env` joins the process group (gloo on CPU, NCCL on CUDA). The trainers
shard their data batches and persistent chains by rank, compute their gradients locally and
average them with an all-reduce before the optimizer step (what ``DistributedDataParallel``
does; crmse calls the collective itself because the CRMSE step assembles its gradient from two
``autograd.grad`` calls, which DDP's backward hooks do not see). Rank 0 is the only process that
writes to the registry, draws a progress bar and writes checkpoints; checkpoints hold every
rank's chains and generator state. Without ``WORLD_SIZE`` > 1 everything is a no-op.
"""

from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist

from crmse_cli.errors import CrmseError


def torchrun_command(n_processes: int, *cli_args: str) -> list[str]:
    """The command line that runs ``crmse <cli_args>`` as ``n_processes`` data-parallel processes.

    ``torchrun --standalone`` on this machine, through this interpreter (``python -m
    torch.distributed.run``), so it needs no ``torchrun`` script on the PATH.

    Args:
        n_processes: processes (ranks) to start, >= 1.
        *cli_args: the ``crmse`` arguments, global options first (e.g. ``"--home", home,
            "regularize", "--from", "mse"``).

    Returns:
        The argument list for :func:`subprocess.run` or :class:`subprocess.Popen`.
    """
    if n_processes < 1:
        raise CrmseError(f"torchrun needs at least one process, got {n_processes}")
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(n_processes),
        "-m",
        "crmse_cli",
        *cli_args,
    ]


@dataclass(frozen=True)
class DistContext:
    """This process's place in a data-parallel run.

    Attributes:
        rank: 0..world_size-1 (0 writes).
        world_size: number of processes (1: not distributed).
    """

    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only writer."""
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str = "cpu", *, timeout_s: float = 600.0) -> DistContext:
        """Join the process group ``torchrun`` describes (gloo on CPU, NCCL on CUDA), else world 1."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank = int(os.environ.get("RANK", "0"))
        if not tdist.is_initialized():
            backend = "nccl" if device.startswith("cuda") else "gloo"
            if backend == "nccl":
                local = int(os.environ.get("LOCAL_RANK", rank))
                torch.cuda.set_device(local)
            tdist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
        return cls(rank=rank, world_size=world)

    def shard(self, n: int, what: str) -> int:
        """This rank's share of ``n`` items (``n`` must divide evenly)."""
        if n % self.world_size:
            raise CrmseError(
                f"{what} = {n} does not divide over {self.world_size} processes; pick a multiple"
            )
        return n // self.world_size

    def check_shards(self, counts: dict[str, int]) -> None:
        """Refuse any of ``counts`` (option -> value) that does not divide over the processes.

        Called before a run row exists, so a torchrun job that cannot split its chains or
        batches is refused with nothing registered.
        """
        for what, n in counts.items():
            self.shard(n, what)

    # -- collectives (no-ops in a single process) -------------------------------------------------
    def mean_(self, tensors: list[torch.Tensor]) -> None:
        """All-reduce ``tensors`` in place to their mean over ranks."""
        if not self.enabled:
            return
        for t in tensors:
            tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
            t.div_(self.world_size)

    def reduce(self, value: float, op: str = "sum") -> float:
        """A float reduced over ranks: "sum", "mean", "min" or "max"."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        red = {"sum": tdist.ReduceOp.SUM, "mean": tdist.ReduceOp.SUM, "min": tdist.ReduceOp.MIN}
        tdist.all_reduce(t, op=red.get(op, tdist.ReduceOp.MAX))
        out = float(t)
        return out / self.world_size if op == "mean" else out

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate equal-shaped ``tensor`` of every rank along dim 0 (rank order)."""
        if not self.enabled:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        tdist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        tdist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def finish(self) -> None:
        """Leave the process group together: a barrier, then its teardown (no-op in a world of one).

        Under gloo a rank that exits (or tears the group down) while a peer is still busy aborts
        that peer with SIGABRT ("terminate called without an active exception"); seen when rank 1
        left as rank 0 was still writing the run.
        """
        if self.enabled and tdist.is_initialized():
            tdist.barrier()
            tdist.destroy_process_group()

    def barrier(self) -> None:
        """Wait for every rank (a no-op in a world of one)."""
        if self.enabled:
            tdist.barrier()
