"""Aspirin, the paper's second molecule: rotors named by chemistry, their noise floors, its presets."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from ase.build import molecule
from conftest import ASPIRIN_X, ASPIRIN_Z, ETHANOL_X, ETHANOL_Z

from crmse_cli import names
from crmse_cli.analysis.dihedrals import (
    dihedral_angles,
    free_energy_profile,
    neighbours,
    profile_error,
    ring_atoms,
)
from crmse_cli.analysis.metrics import distribution_metrics, profile_floor
from crmse_cli.analysis.rotors import dihedral_sets, named_dihedral_sets, rotor_dihedral_sets
from crmse_cli.data.graph import bond_graph

ASPIRIN_ROTORS = ["ester", "carboxylic_acid", "acid_hydroxyl", "ester_acyl", "acetyl_methyl"]


def _elements(quads: np.ndarray) -> list[str]:
    return ["CHO"[[6, 1, 8].index(int(ASPIRIN_Z[i]))] for i in quads[0]]


def test_every_aspirin_rotor_is_named_by_its_chemistry() -> None:
    z, x = ASPIRIN_Z.astype(np.int64), ASPIRIN_X
    sets = dihedral_sets(z, x)
    assert list(sets) == ASPIRIN_ROTORS  # all five rotors the rotor code finds, none left to atom names
    assert len(rotor_dihedral_sets(z, x)) == 5
    bonds = bond_graph(z, x)
    ring = ring_atoms(bonds, len(z))
    nbrs = neighbours(bonds, len(z))
    ester, acid = sets["ester"][0], sets["carboxylic_acid"][0]
    assert _elements(sets["ester"]) == ["C", "C", "O", "C"] and ester[1] in ring and ester[2] not in ring
    assert _elements(sets["carboxylic_acid"]) == ["C", "C", "C", "O"] and acid[1] in ring
    assert any(z[k] == 1 for k in nbrs[int(acid[3])])  # the acid torsion ends on the O-H, not the C=O
    assert (ester[0], acid[0]) == (acid[1], ester[1])  # each reads along the other substituent's ring C
    assert _elements(sets["acid_hydroxyl"]) == ["H", "O", "C", "C"] and sets["acid_hydroxyl"][0, 2] == acid[2]
    assert _elements(sets["ester_acyl"]) == ["C", "O", "C", "C"] and sets["ester_acyl"][0, 1] == ester[2]
    methyl = sets["acetyl_methyl"]
    assert methyl.shape == (3, 4) and all(z[methyl[:, 0]] == 1) and methyl[0, 2] == ester[3]


def test_ethanol_names_and_atoms_are_unchanged() -> None:
    sets = dihedral_sets(ETHANOL_Z.astype(np.int64), ETHANOL_X)
    assert list(sets) == ["hydroxyl", "methyl"]
    assert sets["hydroxyl"].tolist() == [[8, 2, 0, 1]]
    assert sets["methyl"].tolist() == [[5, 1, 0, 2], [6, 1, 0, 2], [7, 1, 0, 2]]


def test_a_pattern_that_matches_several_rotors_names_none() -> None:
    butane = molecule("trans-butane")  # two equivalent methyls: "methyl" would not say which
    assert named_dihedral_sets(butane.numbers, butane.positions) == {}
    acetic = molecule("CH3COOH")  # aspirin's acid O-H and acetyl methyl, alone
    assert sorted(named_dihedral_sets(acetic.numbers, acetic.positions)) == ["acetyl_methyl", "acid_hydroxyl"]


def test_profile_floor_is_the_reference_halves_profile_error() -> None:
    rng = np.random.default_rng(0)
    same = rng.normal(0.0, 40.0, 400)
    assert profile_floor(np.concatenate([same, same]), 500.0) == 0.0
    shifted = np.concatenate([same, rng.normal(30.0, 40.0, 400)])
    first, second = free_energy_profile(shifted[:400], 500.0), free_energy_profile(shifted[400:], 500.0)
    want = profile_error(first.free_energy, second.free_energy)
    assert profile_floor(shifted, 500.0) == pytest.approx(want)
    assert profile_floor(shifted, 500.0) > 0.1


def test_distribution_metrics_state_each_named_rotor_s_floor() -> None:
    z = ASPIRIN_Z.astype(np.int64)
    rng = np.random.default_rng(1)
    ref = ASPIRIN_X + rng.normal(0.0, 0.03, size=(300, 21, 3))
    sample = ASPIRIN_X + rng.normal(0.0, 0.03, size=(100, 21, 3))
    metrics = distribution_metrics(z, sample, None, ref, None, 500.0).metrics
    for name in ASPIRIN_ROTORS:
        value, unit = metrics[names.dihedral_profile_floor(name)]
        phi = dihedral_angles(ref, dihedral_sets(z, ref)[name])
        assert unit == "kcal/mol" and value == pytest.approx(profile_floor(phi, 500.0))
    assert names.metric_title(names.dihedral_profile_floor("ester"), ref="xTB") == (
        "ester profile noise floor (xTB half vs half) (kcal/mol)"
    )


def test_report_and_summary_show_the_floors_beside_the_errors() -> None:
    from crmse_cli.cli.reproduce_cmd import floors_line, headline
    from crmse_cli.report.rows import metric_table
    from crmse_cli.report.structure_figures import _torsion_title

    run = {names.dihedral_profile_error("ester"): (0.5, "kcal/mol"), names.ENERGY_KS: (0.1, "1")}
    run[names.dihedral_profile_floor("ester")] = (0.2, "kcal/mol")
    report = SimpleNamespace(runs=[SimpleNamespace(metrics=run, model_metrics={})], reference_short="xTB")
    rows = {row.key: row for row in metric_table(report)}  # type: ignore[arg-type]
    assert rows[names.dihedral_profile_error("ester")].reference == 0.2
    assert _torsion_title(report, "ester") == "ester torsion (floor 0.20 kcal/mol)"  # type: ignore[arg-type]
    rows_cli = headline({"MSE": run})
    assert rows_cli.index(names.dihedral_profile_error("ester")) == len(names.CORE_METRICS)
    assert floors_line({"MSE": run}) == "profile noise floors (reference half vs half): ester 0.20 kcal/mol"


def test_aspirin_presets_and_references_fit_their_sizes() -> None:
    from crmse_cli.data.dataset import random_splits
    from crmse_cli.defaults import PRETRAIN_N_VAL
    from crmse_cli.stages import reproduce as r

    assert r.PRESET_DATASETS[("aspirin-xtb", "quick")] == "aspirin-xtb-quick"
    quick = r.MOLECULE_PRESETS["aspirin"]["quick"]
    assert r.preset_for("quick", "aspirin") is quick and r.preset_for("quick", "aspirin-xtb-quick") is quick
    assert r.preset_for("quick", "ethanol") is r.PRESETS["quick"]
    assert r.preset_for("paper", "aspirin-xtb") is r.PRESETS["paper"]
    for dataset, n_train in (("aspirin-xtb-quick", quick.pretrain["n_train"]), ("aspirin-xtb", 1000)):
        molecule, cfg = r.XTB_REFERENCES[dataset]
        train, test = (random_splits(cfg.frames, cfg.seed)["01"][k] for k in ("train", "test"))
        assert molecule == "aspirin" and len(train) >= n_train + (PRETRAIN_N_VAL if n_train < 1000 else 0)
        assert cfg.frames - len(train) - len(test) >= 600  # reference frames: two halves for the floors


def test_fetch_xtb_has_a_built_in_aspirin(tmp_path: object) -> None:
    from crmse_cli.stages.fetch_xtb import start_geometry
    from crmse_cli.workspace import Workspace

    z, x, origin = start_geometry(Workspace(tmp_path), "aspirin", None)  # type: ignore[arg-type]
    assert origin == "builtin:aspirin" and z.tolist() == ASPIRIN_Z.tolist()
    assert list(named_dihedral_sets(z, x))[:2] == ["ester", "carboxylic_acid"]
