"""`crmse fetch xtb`: xTB labels in the project's units, exact resume, splits, provenance, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import constants as C

from crmse_cli.data.xtb import MISSING_MESSAGE, require_tblite
from crmse_cli.errors import CrmseError
from crmse_cli.workspace import Workspace

needs_tblite = pytest.mark.skipif(
    __import__("importlib").util.find_spec("tblite") is None, reason="tblite (the xtb extra) is not installed"
)

HARTREE_KCAL = C.physical_constants["Hartree energy"][0] * C.N_A / 4184.0
BOHR_A = C.physical_constants["Bohr radius"][0] * 1e10


def _ethanol() -> tuple[np.ndarray, np.ndarray]:
    from ase.build import molecule

    a = molecule("CH3CH2OH")
    return a.numbers.astype(np.int64), a.positions


def _direct(method: str, z: np.ndarray, x_A: np.ndarray) -> tuple[float, np.ndarray]:
    """tblite called by hand, converted with SciPy's constants: (kcal/mol, kcal/mol/Å)."""
    from tblite.interface import Calculator

    calc = Calculator(method, z, x_A / BOHR_A)
    calc.set("verbosity", 0)
    res = calc.singlepoint()
    return res.get("energy") * HARTREE_KCAL, -res.get("gradient") * HARTREE_KCAL / BOHR_A


def _cfg(**kw: object):  # type: ignore[no-untyped-def]
    from crmse_cli.data.xtb_md import XtbMDConfig

    base: dict[str, object] = dict(frames=4, stride=5, equilibration_ps=0.005, timestep_fs=0.5)
    return XtbMDConfig(**{**base, **kw})  # type: ignore[arg-type]


@needs_tblite
@pytest.mark.parametrize("label", [None, "gfn1"])
def test_tiny_generation_labels_agree_with_direct_tblite(label: str | None) -> None:
    from crmse_cli.data.xtb_md import ReplicaTask, run_replica

    z, x0 = _ethanol()
    res = run_replica(ReplicaTask(z, x0, _cfg(label_method=label), 0, "k"))
    assert res.positions.shape == (4, 9, 3) and np.all(np.isfinite(res.forces))
    assert not np.allclose(res.positions[0], x0, atol=1e-3)  # the dynamics moved
    want = "GFN1-xTB" if label == "gfn1" else "GFN2-xTB"
    for k in (0, 3):
        e, f = _direct(want, z, res.positions[k])
        # Both start from tblite's default guess: equal to SCF round-off (1e-6 kcal/mol, 1e-5 kcal/mol/Å).
        assert abs(res.energies[k] - e) < 1e-6
        np.testing.assert_allclose(res.forces[k], f, atol=1e-5)
    if label == "gfn1":  # the relabelled control: labels and sampling surface differ
        assert np.all(np.abs(res.energies - res.sample_energies) > 100.0)


@needs_tblite
def test_resume_continues_the_same_trajectory(tmp_path: Path) -> None:
    from crmse_cli.data.xtb_md import ReplicaTask, run_replica

    z, x0 = _ethanol()
    cfg = _cfg(frames=6, checkpoint_every_s=1e9)  # only the interrupt writes a checkpoint
    whole = run_replica(ReplicaTask(z, x0, cfg, 1, "k"))
    ckpt = str(tmp_path / "replica.npz")

    def stop(replica: int, step: int, kept: int) -> None:
        if kept == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_replica(ReplicaTask(z, x0, cfg, 1, "k", ckpt), stop)
    assert os.path.exists(ckpt)
    resumed = run_replica(ReplicaTask(z, x0, cfg, 1, "k", ckpt))
    assert resumed.resumed_from_step == cfg.equilibration_steps + 3 * cfg.stride
    for key in ("positions", "energies", "forces"):
        np.testing.assert_array_equal(getattr(resumed, key), getattr(whole, key))
    with pytest.raises(CrmseError, match="another generation"):
        run_replica(ReplicaTask(z, x0, cfg, 1, "other-key", ckpt))


@needs_tblite
def test_fetch_xtb_registers_disjoint_splits_and_provenance(tmp_path: Path) -> None:
    from crmse_cli.data.dataset import Dataset
    from crmse_cli.registry.store import Registry
    from crmse_cli.stages.fetch_xtb import fetch_xtb

    ws = Workspace(tmp_path)
    cfg = _cfg(frames=12, replicas=2)
    res = fetch_xtb(ws, "ethanol", cfg, name="eth", in_process=True)
    data = Dataset.load(res.fetch.path)
    assert data.n_frames == 12 and sorted(data.splits) == ["01", "02", "03", "04", "05"]
    for k in data.splits:
        train, test = data.split(k)
        assert len(train) == len(test) == 3 and not set(train) & set(test)
        assert len(data.reference_indices(k)) == 6
    reg = Registry.open(ws)
    meta = reg.get_dataset("eth").meta
    reg.close()
    for key in (
        "method",
        "label_method",
        "temperature_K",
        "friction_per_fs",
        "timestep_fs",
        "seed",
        "frames",
        "replicas",
        "stride",
        "tblite_version",
        "generation_wall_s",
    ):
        assert key in meta, key
    assert meta["method"] == "gfn2" and meta["label_method"] == "gfn2" and meta["frames"] == 12
    assert set(meta["ensemble_check"]) >= {"virial", "configurational", "energy_spread", "passed"}
    assert not (ws.cache_dir / "xtb" / "eth").exists()  # checkpoints go once registered
    again = fetch_xtb(ws, "ethanol", cfg, name="eth", in_process=True)
    assert again.fetch.already
    with pytest.raises(CrmseError, match="other settings"):
        fetch_xtb(ws, "ethanol", _cfg(frames=12, replicas=2, seed=1), name="eth", in_process=True)


@needs_tblite
def test_fetch_xtb_start_geometries_and_relabelled_control(tmp_path: Path) -> None:
    from ase.io import write

    from crmse_cli.registry.store import Registry
    from crmse_cli.stages.fetch_xtb import default_name, fetch_xtb

    ws = Workspace(tmp_path)
    z, x0 = _ethanol()
    xyz = tmp_path / "start.xyz"
    from ase import Atoms

    write(xyz, Atoms(numbers=z, positions=x0 + 0.01))
    first = fetch_xtb(ws, "myethanol", _cfg(frames=4), start_from=xyz, in_process=True)
    assert first.fetch.name == "myethanol-xtb"
    relabelled = _cfg(frames=4, label_method="gfn1")
    res = fetch_xtb(ws, "ethanol", relabelled, start_from="myethanol-xtb", in_process=True)
    assert res.fetch.name == default_name("ethanol", relabelled) == "ethanol-xtb-gfn2-gfn1label-500K"
    assert res.check is not None and res.check_sampling is not None
    reg = Registry.open(ws)
    try:
        metas = {d.name: d.meta for d in reg.list_datasets()}
    finally:
        reg.close()
    assert metas["myethanol-xtb"]["start"] == f"file:{xyz.resolve()}"
    assert metas[res.fetch.name]["start"] == "dataset:myethanol-xtb"
    assert metas[res.fetch.name]["label_method"] == "gfn1"
    assert metas[res.fetch.name]["ensemble_check_sampling"]["temperature_K"] == 500.0
    with pytest.raises(CrmseError, match="no built-in geometry"):
        fetch_xtb(ws, "malonaldehyde", _cfg(), in_process=True)
    with pytest.raises(CrmseError, match="neither a file nor a registered dataset"):
        fetch_xtb(ws, "ethanol", _cfg(), start_from="nothing-here", in_process=True)


@needs_tblite
def test_hot_set_declared_colder_fails_the_check() -> None:
    """Frames generated at 730 K and declared 500 K fail the ensemble check (~7 s of one core)."""
    from crmse_cli.analysis.stats import ensemble_check
    from crmse_cli.data.xtb import hutchinson_laplacians
    from crmse_cli.data.xtb_md import ReplicaTask, run_replica

    z, x0 = _ethanol()
    cfg = _cfg(temperature_K=730.0, frames=600, stride=5, equilibration_ps=1.0, friction_per_fs=0.05)
    r = run_replica(ReplicaTask(z, x0, cfg, 0, "k"))
    sub = np.arange(0, 600, 10)
    lap = hutchinson_laplacians(z, r.positions[sub], "gfn2")
    hot = ensemble_check(r.positions, r.forces, r.energies, 500.0, tconf=(r.forces[sub], lap), n_blocks=10)
    assert not hot.passed
    assert all(e.value_K > 550.0 for e in hot.estimates)
    assert sum(e.deviation_sigma > 3.0 for e in hot.estimates) >= 2


def test_missing_tblite_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "tblite", None)  # makes `import tblite...` raise ImportError
    monkeypatch.setitem(sys.modules, "tblite.interface", None)
    with pytest.raises(CrmseError) as err:
        require_tblite()
    assert str(err.value) == MISSING_MESSAGE == "install the xtb extra: pip install 'crmse[xtb]'"

    # The CLI, with a tblite that cannot be imported first on the path: one line, exit 1.
    fake = tmp_path / "fake" / "tblite"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('blocked for the test')\n")
    repo = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "CRMSE_HOME": str(tmp_path / "home"),
        "CRMSE_NO_PROGRESS": "1",
        "PYTHONPATH": os.pathsep.join([str(fake.parent), str(repo)]),
    }
    out = subprocess.run(
        [sys.executable, "-m", "crmse_cli", "fetch", "xtb", "ethanol", "--frames", "10"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 1
    assert out.stderr.strip() == "error: install the xtb extra: pip install 'crmse[xtb]'"
    assert "Traceback" not in out.stderr and json is not None


@needs_tblite
def test_reproduce_generates_its_xtb_reference_in_worker_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`reproduce tiny-xtb` registers the generated reference; two processes give the frames of one."""
    from crmse_cli.data.dataset import Dataset
    from crmse_cli.registry.store import Registry
    from crmse_cli.stages import reproduce
    from crmse_cli.stages.fetch_xtb import fetch_xtb

    cfg = _cfg(frames=6, replicas=2)
    monkeypatch.setitem(reproduce.XTB_REFERENCES, "tiny-xtb", ("ethanol", cfg))
    ws = Workspace(tmp_path / "a").ensure()
    reg = Registry.open(ws)
    try:
        reproduce.ensure_dataset(ws, reg, "tiny-xtb", None, processes=2)
        info = reg.get_dataset("tiny-xtb")
    finally:
        reg.close()
    assert info.meta["kind"] == "xtb" and info.meta["processes"] == 2
    serial = fetch_xtb(Workspace(tmp_path / "b"), "ethanol", cfg, name="tiny-xtb", in_process=True)
    a, b = Dataset.load(info.path), Dataset.load(serial.fetch.path)
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.energies, b.energies)


def test_reproduce_fetches_rmd17_for_other_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crmse_cli.registry.store import Registry
    from crmse_cli.stages import fetch, reproduce

    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(
        fetch, "fetch_rmd17", lambda ws, name, from_path=None: calls.append((name, from_path))
    )
    ws = Workspace(tmp_path).ensure()
    reg = Registry.open(ws)
    try:
        reproduce.ensure_dataset(ws, reg, "ethanol", Path("archive.tar.bz2"))
    finally:
        reg.close()
    assert calls == [("ethanol", Path("archive.tar.bz2"))]


@needs_tblite
@pytest.mark.slow
def test_reproduce_ethanol_xtb_end_to_end_without_shared_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's main job at toy sizes: generate the xTB reference, then the whole pipeline."""
    from crmse_cli.stages import pretrain, reproduce
    from crmse_cli.stages.sample import SampleConfig
    from crmse_cli.train.contrastive import ContrastiveConfig

    monkeypatch.setitem(reproduce.XTB_REFERENCES, "ethanol-xtb", ("ethanol", _cfg(frames=40, replicas=2)))
    tiny_model = {"model": {"features": 8, "layers": 1, "n_rbf": 8}, "max_epochs": 2, "n_val": 1}
    monkeypatch.setitem(pretrain.PRESETS, "tiny", {**tiny_model, "early_stopping_patience": 0})
    monkeypatch.setitem(
        reproduce.PRESETS,
        "tiny",
        reproduce.Preset(
            pretrain={},
            sample=SampleConfig(replicas=2, steps=40, record_every=10),
            contrastive=ContrastiveConfig(n_chains=2, n_updates=2, steps_per_update=5, warmup_updates=0),
            control=False,
            polish_updates=2,
            polish_every=1,
        ),
    )
    res = reproduce.reproduce(Workspace(tmp_path), "ethanol-xtb", preset="tiny")
    assert res.report is not None and res.report.is_file()
    assert res.reference_check is not None and "virial" in res.reference_check
    assert set(res.metrics) == {"MSE", "CRMSE"}
    for label in res.metrics:
        assert "dihedral_profile_error.hydroxyl" in res.metrics[label]
    page = res.report.read_text()
    assert "GFN2-xTB reference at 500 K" in page and "DFT reference" not in page


def test_reference_names_follow_the_provenance() -> None:
    """A report calls rMD17 frames DFT, a generated set by its method, a relabelled set by both."""
    from crmse_cli.report.collect import reference_names

    assert reference_names("figshare", {}) == ("DFT reference", "DFT")
    exact = {"source": "xtb", "method": "gfn2", "label_method": "gfn2", "temperature_K": 500.0}
    assert reference_names("xtb", exact) == ("GFN2-xTB reference at 500 K", "GFN2-xTB")
    relabelled = {**exact, "label_method": "gfn1"}
    assert reference_names("xtb", relabelled) == ("GFN2-xTB frames at 500 K, GFN1-xTB labels", "GFN1-xTB")
