"""`crmse_cli.names`: the shared names are the documented ones."""

from __future__ import annotations

from pathlib import Path

from crmse_cli import names

ARCHITECTURE = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()


def test_every_shared_name_is_documented() -> None:
    values = {k: v for k, v in vars(names).items() if k.isupper() and isinstance(v, str)}
    assert len(set(values.values())) == len(values), "two constants spell the same name"
    missing = sorted(f"{k} = {v!r}" for k, v in values.items() if f"`{v}" not in ARCHITECTURE)
    assert missing == [], "document these in docs/architecture.md"


def test_dihedral_metric_names() -> None:
    assert names.dihedral_profile_error("methyl") == "dihedral_profile_error.methyl"
    assert f"`{names.dihedral_profile_error('<torsion>')}`" in ARCHITECTURE


def test_every_table_titles_its_metrics_from_the_one_table() -> None:
    from crmse_cli.analysis.study import ROWS
    from crmse_cli.cli.reproduce_cmd import HEADLINE
    from crmse_cli.report.sweep import KEY_METRICS

    for key in (*ROWS, *HEADLINE, *KEY_METRICS):
        if not key.startswith(names.DIHEDRAL_PROFILE_ERROR + "."):
            assert key in names.TITLES, f"{key} has no title in names.TITLES"
    assert names.metric_title(names.ENERGY_KS) == "energy KS vs reference"
    assert names.metric_title(names.ENERGY_KS, ref="DFT") == "energy KS vs DFT"
    assert names.metric_title(names.TEST_FORCE_MAE) == "test force MAE (kcal/mol/Å)"
    assert names.metric_title(names.TEST_FORCE_MAE, unit=False) == "test force MAE"
    assert names.metric_title(names.dihedral_profile_error("methyl")) == "methyl profile error (kcal/mol)"
