"""Run bookkeeping shared by the stages: status on success, failure and Ctrl-C."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from crmse_cli.errors import CrmseError

if TYPE_CHECKING:
    from crmse_cli.registry.store import Registry

log = logging.getLogger(__name__)


@contextmanager
def tracked(registry: Registry, run_id: str) -> Iterator[None]:
    """Mark ``run_id`` completed when the block ends, interrupted on Ctrl-C, failed on errors.

    The exception is re-raised after the status is written, so the CLI still reports it. Work
    the block saved (checkpoints, artifacts) stays registered either way, and ``--resume`` can
    continue from it.
    """
    try:
        yield
    except KeyboardInterrupt:
        registry.set_status(run_id, "interrupted", error="interrupted by the user (Ctrl-C)")
        raise
    except CrmseError as exc:
        registry.set_status(run_id, "failed", error=str(exc))
        raise
    except BaseException as exc:
        registry.set_status(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    else:
        registry.set_status(run_id, "completed")
