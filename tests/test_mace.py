"""MACE through the adapter: same energies and forces as mace-torch's own calculator, imported
models through regularize (exact resume), sample and evaluate, exported back to mace-torch.

Skips without the ``mace`` extra (``pip install 'crmse[mace]'``). Small models built with
mace-torch's classes on synthetic ethanol geometries (ASE's CH3CH2OH, perturbed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("mace", reason="mace-torch is not installed (the optional 'mace' extra)")

from crmse_cli.model.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from crmse_cli.model.forces import energy_and_forces  # noqa: E402
from crmse_cli.model.mace_adapter import export_mace, is_mace, mace_potential  # noqa: E402
from crmse_cli.units import KCAL_PER_MOL_PER_EV  # noqa: E402
from crmse_cli.workspace import Workspace  # noqa: E402

pytestmark = pytest.mark.slow

E0_EV = {1: -13.6, 6: -1029.5, 8: -2041.3}  # realistic magnitudes: the eV -> kcal/mol path matters


def small_mace(dtype: torch.dtype = torch.float64, seed: int = 0) -> Any:
    """A small ScaleShiftMACE (16x0e, 2 interactions, L_max 1, correlation 2) for H, C, O."""
    from e3nn import o3
    from mace import modules

    zs = [1, 6, 8]
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(seed)
        block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        model = modules.ScaleShiftMACE(
            r_max=4.0,
            num_bessel=6,
            num_polynomial_cutoff=5,
            max_ell=1,
            interaction_cls=block,
            interaction_cls_first=block,
            num_interactions=2,
            num_elements=3,
            hidden_irreps=o3.Irreps("16x0e"),
            MLP_irreps=o3.Irreps("8x0e"),
            atomic_energies=np.array([E0_EV[z] for z in zs]),
            avg_num_neighbors=6.0,
            atomic_numbers=zs,
            correlation=2,
            gate=torch.nn.functional.silu,
            atomic_inter_scale=0.5,
            atomic_inter_shift=0.0,
        )
    finally:
        torch.set_default_dtype(old)
    return model


def ethanol_frames(n: int, seed: int = 0, sigma_A: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    rng = np.random.default_rng(seed)
    pos = atoms.positions[None] + sigma_A * rng.standard_normal((n, len(atoms), 3))
    return np.asarray(atoms.numbers, dtype=np.int64), pos


def calculator_results(model_path: Path, species: np.ndarray, pos: np.ndarray, dtype: str) -> tuple:
    """Energies (eV) and forces (eV/Å) of mace-torch's own MACECalculator, frame by frame."""
    from ase import Atoms
    from mace.calculators import MACECalculator

    calc = MACECalculator(model_paths=str(model_path), device="cpu", default_dtype=dtype)
    energies, forces = [], []
    for x in pos:
        atoms = Atoms(numbers=species, positions=x)
        atoms.calc = calc
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
    return np.array(energies), np.array(forces)


@pytest.mark.parametrize(
    ("dtype", "tol_e", "tol_f"),
    [("float64", 1e-8, 1e-8), ("float32", 2e-2, 2e-3)],  # kcal/mol, kcal/mol/Å
)
def test_adapter_matches_mace_calculator(tmp_path: Path, dtype: str, tol_e: float, tol_f: float) -> None:
    model = small_mace(getattr(torch, dtype))
    path = tmp_path / "small.model"
    torch.save(model, path)
    species, pos = ethanol_frames(5)
    pot = mace_potential(model)
    assert pot.dtype == getattr(torch, dtype) and pot.species == [1, 6, 8]
    x = torch.as_tensor(pos, dtype=pot.dtype)
    energy, forces = energy_and_forces(pot, x, torch.as_tensor(species))  # one batch of 5 replicas
    ref_e, ref_f = calculator_results(path, species, pos, dtype)
    np.testing.assert_allclose(energy.double().numpy(), ref_e * KCAL_PER_MOL_PER_EV, rtol=0, atol=tol_e)
    np.testing.assert_allclose(forces.double().numpy(), ref_f * KCAL_PER_MOL_PER_EV, rtol=0, atol=tol_f)
    # The energies include MACE's E0s once (no crmse shift on top): ~ sum of E0 in kcal/mol.
    e0 = sum(E0_EV[int(z)] for z in species) * KCAL_PER_MOL_PER_EV
    assert np.all(np.abs(energy.double().numpy() - e0) < 200.0)


@pytest.mark.shared
def test_adapter_matches_mace_calculator_on_rmd17_frames(tmp_path: Path) -> None:
    from conftest import ANDERSX, require_shared

    npz = require_shared(ANDERSX / "rmd17_ethanol_train_01.npz")
    with np.load(npz) as d:
        species, pos = np.asarray(d["nuclear_charges"], dtype=np.int64), np.asarray(d["coords"][:6])
    model = small_mace()
    torch.save(model, tmp_path / "m.model")
    energy, forces = energy_and_forces(mace_potential(model), torch.as_tensor(pos), torch.as_tensor(species))
    ref_e, ref_f = calculator_results(tmp_path / "m.model", species, pos, "float64")
    np.testing.assert_allclose(energy.numpy(), ref_e * KCAL_PER_MOL_PER_EV, rtol=0, atol=1e-8)
    np.testing.assert_allclose(forces.numpy(), ref_f * KCAL_PER_MOL_PER_EV, rtol=0, atol=1e-8)


def test_checkpoint_and_export_keep_the_model(tmp_path: Path) -> None:
    model = small_mace()
    species, pos = ethanol_frames(3, seed=1)
    pot = mace_potential(model)
    with torch.no_grad():  # weights that differ from the file's construction
        next(pot.module.model.readouts.parameters()).add_(0.1)
    x, sp = torch.as_tensor(pos), torch.as_tensor(species)
    want = energy_and_forces(pot, x, sp)[0]
    save_checkpoint(tmp_path / "c.pt", pot, extra={})
    loaded, _ = load_checkpoint(tmp_path / "c.pt", trust_code=True)
    assert is_mace(loaded) and loaded.config.architecture == "mace" and loaded.config.cutoff_A == 4.0
    torch.testing.assert_close(energy_and_forces(loaded, x, sp)[0], want, rtol=0, atol=1e-9)
    out = export_mace(loaded, tmp_path / "out.model")
    ref_e, _ = calculator_results(out, species, pos, "float64")
    np.testing.assert_allclose(ref_e * KCAL_PER_MOL_PER_EV, want.numpy(), rtol=0, atol=1e-8)


def write_training_xyz(path: Path, model: Any, n: int = 24) -> None:
    """MACE-style training file: REF_energy / REF_forces in eV, eV/Å (model labels plus noise)."""
    from ase import Atoms
    from ase.io import write

    species, pos = ethanol_frames(n, seed=2)
    pot = mace_potential(model)
    e, f = energy_and_forces(pot, torch.as_tensor(pos), torch.as_tensor(species))
    rng = np.random.default_rng(3)
    frames = []
    for b in range(n):
        atoms = Atoms(numbers=species, positions=pos[b])
        atoms.info["REF_energy"] = float(e[b]) / KCAL_PER_MOL_PER_EV + 0.01 * rng.standard_normal()
        atoms.arrays["REF_forces"] = f[b].numpy() / KCAL_PER_MOL_PER_EV
        frames.append(atoms)
    write(str(path), frames, format="extxyz")


def _regularize_config(updates: int) -> Any:
    from crmse_cli.stages.regularize import RegularizeConfig
    from crmse_cli.train.contrastive import ContrastiveConfig

    c = ContrastiveConfig(
        n_chains=4, steps_per_update=3, n_updates=updates, batch_size=6, warmup_updates=1, lr=1e-3, seed=5
    )
    return RegularizeConfig(contrastive=c, val_every=2, checkpoint_every=1, chains_every=2)


def test_imported_mace_regularizes_resumes_exactly_samples_and_exports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmse_cli.registry.store import Registry
    from crmse_cli.stages.evaluate import evaluate
    from crmse_cli.stages.mace import import_from_options, import_mace
    from crmse_cli.stages.regularize import regularize
    from crmse_cli.stages.sample import SampleConfig, sample
    from crmse_cli.train import contrastive

    model = small_mace()
    model_path, xyz = tmp_path / "my.model", tmp_path / "train.xyz"
    torch.save(model, model_path)
    write_training_xyz(xyz, model)
    ws = Workspace.resolve(tmp_path / "home", trust_code=True)  # my.model is a pickle: vouch for it
    imported = import_mace(ws, model_path, xyz, energy_key="REF_energy", forces_key="REF_forces")
    reg = Registry.open(ws)
    run = reg.get_run(imported.run_id)
    assert run.kind == "pretrain" and run.config["architecture"] == "mace" and run.status == "completed"
    assert imported.metrics["test_energy_mae"][0] < 1.0  # labels are the model's own plus 0.01 eV noise
    assert imported.metrics["test_force_mae"][0] < 1e-6
    from crmse_cli.errors import CrmseError
    from crmse_cli.stages.pretrain import pretrain

    with pytest.raises(CrmseError, match="imported from"):
        pretrain(ws, resume=imported.run_id, progress=False)
    # regularize --from-model resolves to the same imported run
    assert import_from_options(ws, model_path, xyz, None, "REF_energy", "REF_forces") == imported.run_id

    full = regularize(ws, imported.run_id, _regularize_config(4), name="full")
    assert [m.step for m in reg.metrics(reg.get_run("full").id, name="loss_c")] == [1, 2, 3, 4]
    real_step = contrastive.ContrastiveTrainer.step
    calls = {"n": 0}

    def interrupting_step(self: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(contrastive.ContrastiveTrainer, "step", interrupting_step)
    with pytest.raises(KeyboardInterrupt):
        regularize(ws, imported.run_id, _regularize_config(4), name="cut")
    monkeypatch.setattr(contrastive.ContrastiveTrainer, "step", real_step)
    resumed = regularize(ws, None, _regularize_config(4), resume="cut")
    a, _ = load_checkpoint(full.checkpoint, trust_code=True)
    b, pb = load_checkpoint(resumed.checkpoint, trust_code=True)
    assert pb["format_version"] == 2 and is_mace(b)
    changed = False
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb
        torch.testing.assert_close(va, vb, rtol=0, atol=0)
    for va, v0 in zip(a.state_dict().values(), mace_potential(model).state_dict().values(), strict=True):
        changed = changed or not torch.equal(va, v0)
    assert changed  # CRMSE did update the MACE weights

    # The regularized model comes back in mace-torch's format and reproduces the adapter.
    (native,) = reg.artifacts(resumed.run_id, kind="mace_model")
    species, pos = ethanol_frames(3, seed=9)
    want = energy_and_forces(b, torch.as_tensor(pos), torch.as_tensor(species))[0].numpy()
    got, _ = calculator_results(Path(native.path), species, pos, "float64")
    np.testing.assert_allclose(got * KCAL_PER_MOL_PER_EV, want, rtol=0, atol=1e-8)

    s = sample(ws, resumed.run_id, SampleConfig(replicas=3, steps=20, record_every=10, seed=1))
    assert reg.get_run(s.run_id).status == "completed"
    ev = evaluate(ws, s.run_id)
    assert "energy_ks" in ev.metrics and "test_force_mae" in ev.metrics


def test_pretrain_architecture_mace_fits_e0s_and_exports(tmp_path: Path) -> None:
    from crmse_cli.config import from_dict
    from crmse_cli.registry.store import Registry
    from crmse_cli.stages.fetch import fetch_xyz
    from crmse_cli.stages.pretrain import pretrain
    from crmse_cli.train.pretrain import PretrainConfig

    xyz = tmp_path / "train.xyz"
    write_training_xyz(xyz, small_mace(seed=4), n=30)
    ws = Workspace.resolve(tmp_path / "home")
    fetch_xyz(ws, xyz, name="eth", energy_unit="eV", test_fraction=0.2, split_seed=0)
    model = {"architecture": "mace", "features": 8, "layers": 1, "n_rbf": 4, "envelope_p": 5}
    settings = {"model": model, "n_train": 20, "n_val": 4, "max_epochs": 2, "batch_size": 8}
    cfg = from_dict(PretrainConfig, settings)
    res = pretrain(ws, dataset="eth", config=cfg, name="mace-tiny", progress=False)
    reg = Registry.open(ws)
    assert reg.get_run("mace-tiny").status == "completed"
    pot, _ = load_checkpoint(res.checkpoint, trust_code=True)
    assert is_mace(pot) and float(pot.scale) == 1.0 and not pot.shift.any()  # no crmse shift/scale
    e0 = pot.module.model.atomic_energies_fn.atomic_energies
    assert e0.abs().sum() > 0  # E0s fitted from the training set
    # Errors are of the size of the energy spread, not of the ~97,000 kcal/mol total energy.
    assert res.metrics["test_energy_mae"][0] < 50.0
    (native,) = reg.artifacts(res.run_id, kind="mace_model")
    loaded = torch.load(native.path, weights_only=False)
    assert type(loaded).__name__ == "ScaleShiftMACE"


def test_cli_regularize_from_model_and_export(tmp_path: Path) -> None:
    import json

    from test_cli import crmse

    model = small_mace()
    model_path, xyz = tmp_path / "my.model", tmp_path / "train.xyz"
    torch.save(model, model_path)
    write_training_xyz(xyz, model, n=12)
    home = tmp_path / "home"
    args = ["--from-model", str(model_path), "--data", str(xyz), "--energy-key", "REF_energy", "--trust-code"]
    tiny = ["--updates", "2", "--chains", "2", "--steps-per-update", "2", "--batch-size", "4"]
    out = crmse(home, "--json", "regularize", *args, "--forces-key", "REF_forces", *tiny, "--name", "r")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)  # stdout is JSON only (mace-torch's import notice is kept out)
    assert result["metrics"]["test_force_mae"]["unit"] == "kcal/mol/A"
    bad = crmse(home, "regularize", "--from-model", str(model_path), *tiny)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: --from-model needs --data")
    exported = crmse(home, "--json", "mace", "export", "r", str(tmp_path / "back.model"))
    assert exported.returncode == 0, exported.stderr
    species, pos = ethanol_frames(2, seed=5)
    back, _ = calculator_results(Path(json.loads(exported.stdout)["path"]), species, pos, "float64")
    final, _ = load_checkpoint(result["checkpoint"], trust_code=True)
    want = energy_and_forces(final, torch.as_tensor(pos), torch.as_tensor(species))[0].numpy()
    np.testing.assert_allclose(back * KCAL_PER_MOL_PER_EV, want, rtol=0, atol=1e-8)


def test_mace_checkpoint_rebuilds_from_plain_values_without_running_its_pickle(tmp_path: Path) -> None:
    """Issue 28 #1: a MACE checkpoint stores the architecture as plain values (mace_spec); it loads
    without --trust-code and never unpickles ``module.bytes``, even when they were crafted."""
    from test_trust import Marker, _pickle

    from crmse_cli.errors import CrmseError

    pot = mace_potential(small_mace())
    with torch.no_grad():  # weights that differ from the construction: they come from the state dict
        next(pot.module.model.readouts.parameters()).add_(0.1)
    species, pos = ethanol_frames(3, seed=2)
    x, sp = torch.as_tensor(pos), torch.as_tensor(species)
    want = energy_and_forces(pot, x, sp)[0]
    path = tmp_path / "c.pt"
    save_checkpoint(path, pot, extra={})
    payload = torch.load(path, weights_only=True)
    assert payload["module"]["spec"]["class"] == "ScaleShiftMACE"
    loaded, _ = load_checkpoint(path)  # no trust_code: nothing is unpickled
    assert is_mace(loaded)
    torch.testing.assert_close(energy_and_forces(loaded, x, sp)[0], want, rtol=0, atol=1e-9)

    marker = tmp_path / "pwned"
    payload["module"]["bytes"] = _pickle(Marker(marker))  # the pickle is never read
    torch.save(payload, path)
    load_checkpoint(path)
    assert not marker.exists()
    spec = payload["module"]["spec"]
    # An unknown name, a value mace-torch cannot take, or no spec: only the pickle is left, refused.
    for key, bad in (
        ("interaction_cls", {"class": "os.system"}),
        ("atomic_numbers", {"tensor": [[1], []]}),
        (None, None),
    ):
        crafted = dict(payload, module={"adapter": "mace", "bytes": payload["module"]["bytes"]})
        if key is not None:
            crafted["module"]["spec"] = {**spec, "kwargs": {**spec["kwargs"], key: bad}}
        torch.save(crafted, path)
        with pytest.raises(CrmseError, match="--trust-code"):
            load_checkpoint(path)
        assert not marker.exists()
    other = dict(payload, module={**payload["module"], "spec": {**spec, "mace_version": "0.0.1"}})
    torch.save(other, path)
    with pytest.raises(CrmseError, match="mace-torch 0.0.1"):
        load_checkpoint(path)
    assert not marker.exists()
