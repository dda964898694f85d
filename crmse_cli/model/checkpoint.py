"""Checkpoints of a potential: weights, config, species, shift/scale, units and versions.

A checkpoint is a ``torch.save`` file of plain types and tensors only, so it loads with
``torch.load(weights_only=True)`` (no arbitrary code runs on load). It is written atomically:
a reader sees the old file or the new one, never half of one.

Format 2 (format 1 files still load) adds, for wrapped modules (``ModulePotential``: MACE or
your own), ``module``: ``{"adapter": "mace" | "module", "bytes": ...}``, the module's construction (for MACE
the model in mace-torch's own file format). The payload still loads with ``weights_only=True``;
rebuilding the module from its bytes unpickles it (as mace-torch loads its ``.model`` files), which
runs code from the file. ``load_checkpoint`` therefore refuses such a checkpoint unless the caller
says the file is trusted (``trust_code=True``: the user's ``--trust-code``, or a registered file
crmse wrote in this workspace, see ``stages._models``); it refuses before the bytes are touched.
A MACE entry also holds ``spec``, the architecture as plain values (:mod:`crmse_cli.model.mace_spec`):
such a model is rebuilt from it and the state dict, never unpickled, and needs no trust.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from crmse_cli import __version__
from crmse_cli.config import from_dict, to_dict
from crmse_cli.errors import CrmseError, DataError, NotFoundError
from crmse_cli.fileio import atomic_path, sha256_file
from crmse_cli.model.build import build_potential
from crmse_cli.model.checkpoint_extra import EXTRA_VERSION, CheckpointExtra
from crmse_cli.model.config import DTYPES, ModelConfig
from crmse_cli.model.mace_adapter import MACEEnergy
from crmse_cli.model.mace_spec import Unsupported
from crmse_cli.model.module_potential import ModulePotential, module_from_bytes
from crmse_cli.model.potential import Potential
from crmse_cli.model.trust import refuse_untrusted
from crmse_cli.units import ENERGY_UNIT, LENGTH_UNIT

FORMAT_VERSION = 2
"""The format this crmse writes and the newest it reads (2 added wrapped modules)."""
KIND = "crmse-potential"
UNITS = {"energy": ENERGY_UNIT, "length": LENGTH_UNIT}
CODE_ARCHITECTURES = ("mace", "module")
"""Architectures whose checkpoints store the model as a pickle (``module.bytes``)."""


def save_checkpoint(
    path: Path | str, potential: Potential, *, extra: CheckpointExtra | Mapping[str, object] | None = None
) -> str:
    """Write ``potential`` (and ``extra``) to ``path`` atomically; return the file's sha256.

    Args:
        path: destination file (parents are created).
        potential: the model to save.
        extra: its provenance and the writer's resume state (:class:`CheckpointExtra`; a plain
            mapping is read as one): tensors and plain Python types only (dict, list, str, int,
            float, bool, None), so that the file stays loadable with ``weights_only=True``.

    Returns:
        Hex sha256 of the written file.
    """
    payload: dict[str, Any] = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "config": to_dict(potential.config),
        "species": list(potential.species),
        "shift": [float(s) for s in potential.shift.tolist()],
        "scale": float(potential.scale),
        "units": dict(UNITS),
        "state_dict": {k: v.detach().cpu().clone() for k, v in potential.state_dict().items()},
        "extra": _extra(extra, path).to_dict(),
    }
    if isinstance(potential, ModulePotential):
        entry = {"adapter": potential.config.architecture, "bytes": potential.module_bytes()}
        spec = potential.module_spec()  # MACE: rebuilt from plain values, no --trust-code needed
        payload["module"] = entry if spec is None else {**entry, "spec": spec}
    # Through a file object: a full disk then raises OSError (ENOSPC, which atomic_path names),
    # where torch's own file writer raises "unexpected pos" RuntimeErrors.
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)
    return sha256_file(path)


def _extra(extra: CheckpointExtra | Mapping[str, object] | None, path: Path | str) -> CheckpointExtra:
    """``extra`` as the record this crmse writes (today's layout, so today's version)."""
    if not isinstance(extra, CheckpointExtra):
        extra = CheckpointExtra.from_dict(extra or {}, where=str(path))
    return dataclasses.replace(extra, version=EXTRA_VERSION)


def _module_potential(
    path: Path, payload: dict[str, Any], config: ModelConfig, device: str | torch.device, trust_code: bool
) -> Potential:
    """Rebuild a wrapped module from the payload's ``module`` entry (format 2).

    A MACE model with a ``spec`` is built from those plain values (:mod:`crmse_cli.model.mace_spec`)
    and needs no trust; otherwise the module's bytes are unpickled, only when ``trust_code``.
    """
    entry = payload.get("module")
    if not isinstance(entry, dict):
        raise DataError(f"a {config.architecture!r} checkpoint without its module; re-create it")
    module: torch.nn.Module
    if entry.get("adapter") == "mace" and isinstance(entry.get("spec"), dict):
        try:
            module = MACEEnergy.from_spec(entry["spec"], dtype=config.torch_dtype, device=device)
            return ModulePotential(module, config, payload["species"])
        except Unsupported as exc:
            if not trust_code:
                raise refuse_untrusted(path, f"a MACE model stored as a pickle ({exc})") from exc
    if not trust_code:
        raise refuse_untrusted(path, f"a {config.architecture!r} model stored as a pickle")
    if not isinstance(entry.get("bytes"), bytes):
        raise DataError(f"a {config.architecture!r} checkpoint without its module; re-create it")
    if entry.get("adapter") == "mace":
        module = MACEEnergy.from_bytes(entry["bytes"], device=device)
    else:
        module = module_from_bytes(entry["bytes"], device=device)
    return ModulePotential(module, config, payload["species"])


def _read(path: Path, device: str | torch.device) -> dict[str, Any]:
    if not path.is_file():
        raise NotFoundError(f"checkpoint {path} does not exist; check the path or the run's checkpoints")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch.load raises many types for corrupt, truncated or foreign files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{path} is not a readable crmse checkpoint ({reason[:120]}); re-create or re-download it"
        ) from exc
    if not isinstance(payload, dict) or payload.get("kind") != KIND:
        raise DataError(f"{path} is not a crmse potential checkpoint; pass a file written by crmse")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CrmseError(
            f"{path} has checkpoint format {version}, newer than this crmse {__version__} reads "
            f"({FORMAT_VERSION}); upgrade crmse"
        )
    return payload


def load_checkpoint(
    path: Path | str,
    *,
    device: str | torch.device = "cpu",
    dtype: str | None = None,
    trust_code: bool = False,
) -> tuple[Potential, dict[str, Any]]:
    """Load a potential saved by ``save_checkpoint``.

    Args:
        path: the checkpoint file.
        device: where to put the weights.
        dtype: "float32" or "float64" to override the saved ``ModelConfig.dtype``.
        trust_code: the file may run code: a wrapped module ("mace", "module") is unpickled.
            Without it such a checkpoint is refused before its module bytes are read.

    Returns:
        (the potential in eval mode, the whole payload: ``extra`` holds the caller's state).

    Raises:
        CrmseError: an untrusted checkpoint that holds code (one line naming ``--trust-code``).
    """
    path = Path(path)
    payload = _read(path, device)
    try:
        config = from_dict(ModelConfig, dict(payload["config"]), where=f"{path}: model config")
        if dtype is not None:
            if dtype not in DTYPES:
                raise CrmseError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
            config = dataclasses.replace(config, dtype=dtype)
        # The random initialisation is overwritten at once; fork the RNG so that loading does
        # not advance the global generator (a resumed run restores its own RNG state).
        if config.architecture in CODE_ARCHITECTURES:
            potential = _module_potential(path, payload, config, device, trust_code)
        else:
            with torch.random.fork_rng(devices=[]):
                potential = build_potential(config, payload["species"])
        potential.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise DataError(
            f"{path} holds an inconsistent crmse checkpoint ({type(exc).__name__}); re-create it"
        ) from exc
    potential.to(device=device, dtype=config.torch_dtype)
    potential.eval()
    return potential, payload
