"""`crmse_cli.names`: the shared names are the documented ones."""

from __future__ import annotations

from pathlib import Path

from crmse_cli import names

ARCHITECTURE = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()


def test_every_shared_name_is_documented() -> None:
    values = {k: v for k, v in vars(names).items() if k.isupper()}
    assert len(set(values.values())) == len(values), "two constants spell the same name"
    missing = sorted(f"{k} = {v!r}" for k, v in values.items() if f"`{v}" not in ARCHITECTURE)
    assert missing == [], "document these in docs/architecture.md"


def test_dihedral_metric_names() -> None:
    assert names.dihedral_profile_error("methyl") == "dihedral_profile_error.methyl"
    assert f"`{names.dihedral_profile_error('<torsion>')}`" in ARCHITECTURE
