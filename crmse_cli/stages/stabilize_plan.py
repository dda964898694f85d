"""What `crmse stabilize` will do, decided and checked before any run exists.

:func:`plan` reads the user's MODEL and ``--data`` (a MACE ``.model`` file with its extended-XYZ
training file or a registered dataset; a crmse run or checkpoint with its own dataset), picks the
names of the steps' runs and datasets, and refuses in one line what cannot work, naming the
option that resolves it: a dataset name taken by other frames (``--dataset-name``), a run name
taken by runs that are not this journey's (``--name``), a pickle without ``--trust-code``.
Nothing is registered here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from crmse_cli.errors import CrmseError, NotFoundError
from crmse_cli.fileio import sha256_file
from crmse_cli.model.trust import refuse_untrusted
from crmse_cli.stages._models import resolve_model
from crmse_cli.stages.fetch import same_xyz
from crmse_cli.stages.mace import IMPORT_TEST_FRACTION
from crmse_cli.workspace import Workspace

if TYPE_CHECKING:
    from crmse_cli.registry.store import Registry

MACE_SUFFIX = ".model"
VAL_FRACTION = 0.1
"""Share of an imported MACE model's training frames held out as the force budget's validation frames."""
IMPORT_SPLIT_SEED = 0



class XyzOptions(TypedDict):
    """How the extended-XYZ files of a journey are read: the keyword arguments of ``fetch_xyz``."""

    energy_unit: str
    energy_key: str | None
    forces_key: str | None

@dataclass(frozen=True)
class Plan:
    """The journey's inputs and names.

    Attributes:
        name: prefix of every step's run name (``<name>-import``, ``<name>-before``, ...).
        kind: "mace" (a mace-torch file, exported back as one) or "crmse" (a run or checkpoint).
        model: the MACE file, or the crmse model's run id (its checkpoint path when no run owns it).
        model_run: the crmse model's run (None for a bare checkpoint, and for MACE before import).
        model_sha256: the MACE file's checksum (None for crmse models).
        dataset: the dataset the model is stabilized on.
        data_file: extended-XYZ file to import as ``dataset`` (None: registered already).
        test_file: extended-XYZ file of held-out labelled frames, if any.
        test_dataset: the dataset name of ``test_file``.
        out: where the stabilized MACE model is written (None for crmse models).
        import_options: energy unit and keys of the extended-XYZ files.
    """

    name: str
    kind: str
    model: str
    model_run: str | None
    model_sha256: str | None
    dataset: str
    data_file: Path | None
    test_file: Path | None
    test_dataset: str | None
    out: Path | None
    import_options: XyzOptions

    def step(self, what: str) -> str:
        """The run name of step ``what`` (``import``, ``before``, ``crmse``, ...)."""
        return f"{self.name}-{what}"


def clean_name(text: str) -> str:
    """``text`` reduced to a run / dataset name (letters, digits, ``_.-``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text).strip("_") or "model"


def _xyz_meta(path: Path, opts: XyzOptions, *, split: bool) -> dict[str, object]:
    """The identity of an extended-XYZ import (see ``stages.fetch.XYZ_IDENTITY``)."""
    return {
        "kind": "xyz",
        "source_sha256": sha256_file(path),
        "energy_unit_in_file": opts["energy_unit"],
        "test_fraction": IMPORT_TEST_FRACTION if split else None,
        "split_seed": IMPORT_SPLIT_SEED if split else None,
        "energy_key": opts["energy_key"],
        "forces_key": opts["forces_key"],
    }


def _check_free(
    reg: Registry, name: str, path: Path, opts: XyzOptions, *, split: bool, option: str
) -> None:
    """Refuse when dataset ``name`` is registered from other frames (or other settings)."""
    info = reg.find_dataset(name)
    if info is not None and not same_xyz(info, _xyz_meta(path, opts, split=split)):
        raise CrmseError(
            f"dataset {name!r} is registered already with other frames or settings (from {info.source}); "
            f"pass {option} NEW to import {path.name} under another name"
        )


def _mace_plan(
    ws: Workspace,
    reg: Registry,
    path: Path,
    data: str | None,
    dataset_name: str | None,
    opts: XyzOptions,
) -> tuple[str, Path | None]:
    """(dataset, file to import) of a MACE model; refusals before anything runs."""
    if data is None:
        raise CrmseError(
            "--data is required with a MACE model: the extended-XYZ file it was trained on, "
            "or a registered dataset"
        )
    file = Path(data).expanduser()
    if file.is_file():
        name = dataset_name or clean_name(file.stem)
        _check_free(reg, name, file, opts, split=True, option="--dataset-name")
        return name, file
    if reg.find_dataset(data) is None:
        raise NotFoundError(
            f"--data {data}: no such file and no registered dataset of that name (see `crmse datasets`)"
        )
    if dataset_name is not None and dataset_name != data:
        raise CrmseError(
            f"--dataset-name names the dataset of a --data file; --data {data} is registered already"
        )
    return data, None


def plan(
    ws: Workspace,
    reg: Registry,
    model: str,
    *,
    data: str | None,
    name: str | None = None,
    dataset_name: str | None = None,
    test: Path | str | None = None,
    out: Path | str | None = None,
    energy_unit: str = "eV",
    energy_key: str | None = None,
    forces_key: str | None = None,
) -> Plan:
    """Decide the journey's names and inputs; refuse in one line what cannot work.

    Args:
        ws: the workspace (its ``trust_code`` is the user's ``--trust-code``).
        reg: the open registry.
        model: a mace-torch ``.model`` file, a crmse checkpoint file, or a crmse run id / name.
        data: MACE: its extended-XYZ training file or a registered dataset; crmse: None or the
            model's own dataset.
        name: prefix of the steps' run names (default: the model's file stem or run name).
        dataset_name: the dataset name of a ``data`` file (default: its stem).
        test: extended-XYZ file of held-out labelled frames (default: the split's test frames).
        out: where the stabilized MACE model goes (default: ``<model stem>-stable.model`` beside it).
        energy_unit: the extended-XYZ files' energy unit ("eV" or "kcal/mol").
        energy_key: their energy key (e.g. ``REF_energy``).
        forces_key: their forces key (e.g. ``REF_forces``).
    """
    opts = XyzOptions(energy_unit=energy_unit, energy_key=energy_key, forces_key=forces_key)
    path = Path(model).expanduser()
    sha, model_run = None, None
    if path.suffix == MACE_SUFFIX:
        if not path.is_file():
            raise NotFoundError(f"MODEL {model}: no such file")
        kind, model_ref, sha = "mace", str(path.resolve()), sha256_file(path)
        run_name = clean_name(name or path.stem)
        done = [
            r
            for r in reg.list_runs(kind="pretrain")
            if r.name == f"{run_name}-import" and r.status == "completed"
        ]
        if not done and not ws.trust_code:  # a finished import is this workspace's own checkpoint
            raise refuse_untrusted(path, "a model in mace-torch's format (a pickle)")
        dataset, data_file = _mace_plan(ws, reg, path, data, dataset_name, opts)
        target = Path(out).expanduser() if out else path.with_name(f"{path.stem}-stable{MACE_SUFFIX}")
    else:
        handle = resolve_model(reg, model, trust_code=ws.trust_code)
        kind, dataset, data_file, target = "crmse", handle.dataset, None, None
        model_run = handle.run.id if handle.run is not None else None
        model_ref = model_run or str(handle.checkpoint)
        default = (handle.run.name or handle.run.id) if handle.run is not None else path.stem
        run_name = clean_name(name or default)
        if data is not None and data != dataset:
            raise CrmseError(
                f"--data {data}: a crmse model comes with its dataset ({dataset}); "
                "leave --data out or name that dataset"
            )
        if dataset_name is not None or out is not None:
            raise CrmseError("--dataset-name and --out are for MACE models; a crmse model stays in its run")
    test_file = Path(test).expanduser() if test is not None else None
    test_dataset = None
    if test_file is not None:
        if not test_file.is_file():
            raise NotFoundError(f"--test {test}: no such file")
        test_dataset = f"{run_name}-test"
        _check_free(reg, test_dataset, test_file, opts, split=False, option="--name")
    return Plan(
        run_name, kind, model_ref, model_run, sha, dataset, data_file, test_file, test_dataset, target, opts
    )
