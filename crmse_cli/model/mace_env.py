"""Importing mace-torch quietly: the install hint, its warnings and its default dtype.

Used by :mod:`crmse_cli.model.mace_adapter` and :mod:`crmse_cli.model.mace_spec`; ``mace`` itself
is imported only inside :func:`require_mace` (the optional ``mace`` extra: importing crmse never
needs it).
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from typing import Any

import torch

from crmse_cli.errors import CrmseError

log = logging.getLogger("crmse_cli.model.mace_adapter")  # the logger these messages always had

MISSING_EXTRA = "install the mace extra: pip install 'crmse[mace]'"


def require_mace() -> Any:
    """The ``mace`` package, or CrmseError with the one-line install hint."""
    try:
        # mace-torch prints a notice about optional CUDA kernels to stdout on import, which
        # would corrupt `--json` output: it goes to the log instead.
        with quiet(), redirect_stdout(io.StringIO()) as printed:
            import mace.modules
        if printed.getvalue().strip():
            log.debug("mace-torch: %s", printed.getvalue().strip())
    except ImportError as exc:
        raise CrmseError(MISSING_EXTRA) from exc
    return mace


@contextmanager
def quiet() -> Iterator[None]:
    """Silence the UserWarnings mace-torch and e3nn raise on every import and unpickling.

    They come from TorchScript annotations and their own torch.load calls: not the user's to fix.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """mace-torch creates its buffers in torch's default dtype: build the model in the target one."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)
