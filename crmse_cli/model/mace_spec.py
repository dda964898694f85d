"""A MACE model as plain values: rebuilt from its hyper-parameters and a state dict, never unpickled.

mace-torch saves a model by pickling it, and unpickling runs code from the file. A crmse
checkpoint of a MACE model therefore also stores :func:`model_spec`: the constructor arguments
that mace-torch's own ``extract_config_mace_model`` reads off a ``ScaleShiftMACE`` (the ones its
converters and fine-tuning rebuild models from), written as plain values. Classes and the gate
are stored by name and looked up only in mace-torch's own tables (``interaction_classes``,
``readout_classes``, ``gate_dict``), irreps as their string, arrays as lists. :func:`build_model`
turns such a spec back into a model with mace-torch's constructor; the weights come from the
checkpoint's state dict, loaded with ``torch.load(weights_only=True)``. Nothing in the file is
ever called, so such a checkpoint needs no ``--trust-code``.

A spec is written only when the rebuilt model gives the same energies as the model itself
(checked once per model, :meth:`crmse_cli.model.mace_adapter.MACEEnergy.spec`), and is used only
by the mace-torch version that wrote it; otherwise the checkpoint falls back to the pickle, which
needs ``--trust-code`` unless crmse wrote the file in this workspace.
``mace`` is imported inside the functions that need it: it is the optional ``mace`` extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from crmse_cli.errors import CrmseError
from crmse_cli.model.mace_env import default_dtype, quiet

MODEL_CLASSES = ("ScaleShiftMACE",)
"""mace-torch model classes a spec may name (``extract_config_mace_model`` describes these)."""


class Unsupported(CrmseError):
    """A model or spec that plain values cannot describe (the pickle is then the only way)."""


def _tables() -> tuple[dict[str, Any], dict[str, Any]]:
    from mace import modules

    classes = {**modules.interaction_classes, **modules.readout_classes}
    return classes, dict(modules.gate_dict)


def _encode(value: Any, classes: dict[str, Any], gates: dict[str, Any]) -> Any:
    from e3nn import o3

    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, o3.Irreps):  # a tuple: before the lists
        return {"irreps": str(value)}
    if isinstance(value, list | tuple):
        return [_encode(v, classes, gates) for v in value]
    if isinstance(value, torch.Tensor | np.ndarray):
        kind = "tensor" if isinstance(value, torch.Tensor) else "ndarray"
        return {kind: value.tolist()}
    for name, cls in classes.items():
        if value is cls:
            return {"class": name}
    for name, fn in gates.items():
        if fn is not None and value is fn:
            return {"gate": name}
    raise Unsupported(f"a MACE setting of type {type(value).__name__} has no plain form")


def _decode(value: Any, classes: dict[str, Any], gates: dict[str, Any]) -> Any:
    from e3nn import o3

    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_decode(v, classes, gates) for v in value]
    if isinstance(value, dict) and len(value) == 1:
        ((kind, inner),) = value.items()
        if kind == "irreps" and isinstance(inner, str):
            return o3.Irreps(inner)
        if kind == "tensor":
            return torch.tensor(inner)
        if kind == "ndarray":
            return np.array(inner)
        if kind == "class" and inner in classes:
            return classes[inner]
        if kind == "gate" and inner in gates:
            return gates[inner]
    raise Unsupported(f"unknown MACE setting {str(value)[:60]!r} in the checkpoint")


def model_spec(model: Any) -> dict[str, Any]:
    """The plain-value description of a mace-torch ``ScaleShiftMACE`` (see the module docstring).

    Raises:
        Unsupported: another model class, or a setting without a plain form.
    """
    import mace
    from mace.tools.scripts_utils import extract_config_mace_model

    name = type(model).__name__
    if name not in MODEL_CLASSES:
        raise Unsupported(f"{name} models are stored as pickles only")
    config = extract_config_mace_model(model)
    classes, gates = _tables()
    kwargs = {str(k): _encode(v, classes, gates) for k, v in config.items()}
    return {"class": name, "mace_version": str(mace.__version__), "kwargs": kwargs}


def build_model(spec: Any, dtype: torch.dtype) -> Any:
    """A fresh mace-torch model (random weights) of the architecture ``spec`` describes.

    Raises:
        Unsupported: a spec of another mace-torch version or with unknown names and types.
    """
    import mace
    from mace import modules

    if not isinstance(spec, dict) or spec.get("class") not in MODEL_CLASSES:
        raise Unsupported("the checkpoint's MACE description names no known model class")
    if spec.get("mace_version") != str(mace.__version__):
        raise Unsupported(
            f"the MACE model was described by mace-torch {spec.get('mace_version')}, this is "
            f"{mace.__version__}"
        )
    kwargs = spec.get("kwargs")
    if not isinstance(kwargs, dict):
        raise Unsupported("the checkpoint's MACE description has no settings")
    classes, gates = _tables()
    cls = getattr(modules, spec["class"])
    try:
        decoded = {str(k): _decode(v, classes, gates) for k, v in kwargs.items()}
        with default_dtype(dtype), quiet(), torch.random.fork_rng(devices=[]):
            model = cls(**decoded)
    except Unsupported:
        raise
    except Exception as exc:  # noqa: BLE001 - any value mace-torch cannot build from: not this way
        raise Unsupported(f"mace-torch cannot build the described model ({type(exc).__name__})") from exc
    return model.to(dtype)
