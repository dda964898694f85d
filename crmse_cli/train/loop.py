"""The one optimisation loop of crmse: pretraining and CRMSE differ only in their step function.

:class:`TrainingLoop` owns what both trainers share: the Adam optimizer (fresh, or continued from
a saved state), the learning rate of each step, gradient-norm clipping (``grad_clip`` 0 = off,
everywhere), the optional exponential moving average of the weights, the observers (``attach(fn,
every=n)``: called on every n-th record and on the final one, ASE's ``Dynamics.attach``), and the
state a checkpoint needs for an exact resume. A trainer computes its loss (or its gradients) and
calls :meth:`TrainingLoop.apply`; it yields one record per epoch or update and calls
:meth:`TrainingLoop.notify`. Loops know nothing of the registry: logging, validation,
checkpoints and progress bars are observers or the stage's business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import torch

from crmse_cli.train.distributed import DistContext
from crmse_cli.train.optim import WeightAverage

R = TypeVar("R")


class TrainingLoop(Generic[R]):
    """Optimizer, learning rate, clipping, EMA and observers of one training run.

    Args:
        params: the trainable parameters (their order is the optimizer state's order).
        lr: the initial learning rate (each :meth:`apply` sets the step's rate).
        grad_clip: global gradient-norm clip; 0 = off.
        ema_decay: decay of the weight average; 0 = no average.
        optimizer_state: an Adam ``state_dict`` to continue from.
    """

    def __init__(
        self,
        params: Sequence[torch.nn.Parameter],
        *,
        lr: float,
        grad_clip: float = 0.0,
        ema_decay: float = 0.0,
        optimizer_state: dict[str, Any] | None = None,
        dist: DistContext | None = None,
    ) -> None:
        self.params = list(params)
        self.dist = dist or DistContext()
        self.optimizer = torch.optim.Adam(self.params, lr=lr)
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)
        self.grad_clip = float(grad_clip or 0.0)
        self.ema = WeightAverage(self.params, ema_decay) if ema_decay > 0 else None
        self._observers: list[tuple[Callable[[R], object], int]] = []

    # -- the step --------------------------------------------------------------------------------
    def apply(
        self,
        lr: float,
        *,
        loss: torch.Tensor | None = None,
        grads: Sequence[torch.Tensor | None] | None = None,
        average: bool = True,
    ) -> None:
        """One optimizer step at rate ``lr`` from ``loss`` (back-propagated) or given ``grads``.

        In a data-parallel run the gradients are averaged over ranks here (``average``); the
        CRMSE step passes ``average=False`` with gradients it has already reduced.
        """
        if (loss is None) == (grads is None):
            raise ValueError("pass exactly one of loss or grads")
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        if loss is not None:
            loss.backward()  # type: ignore[no-untyped-call]
        else:
            assert grads is not None
            for p, g in zip(self.params, grads, strict=True):
                p.grad = torch.zeros_like(p) if g is None else g.detach()
        if average and self.dist.enabled:  # DDP: every rank steps with the mean gradient
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            self.dist.mean_([p.grad for p in self.params if p.grad is not None])
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update()

    @property
    def lr(self) -> float:
        """The rate of the last step."""
        return float(self.optimizer.param_groups[0]["lr"])

    # -- observers -------------------------------------------------------------------------------
    def attach(self, fn: Callable[[R], object], every: int = 1) -> None:
        """Call ``fn(record)`` after every ``every``-th record and after the final one."""
        self._observers.append((fn, max(1, int(every))))

    def notify(self, record: R, index: int, *, final: bool) -> None:
        """Hand ``record`` (the ``index``-th epoch or update) to the observers that are due."""
        for fn, every in self._observers:
            if final or index % every == 0:
                fn(record)

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``optimizer`` and ``ema`` states, as checkpoints hold them."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s optimizer and EMA state."""
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
