"""Where rMD17 comes from: the official archive (one URL and its mirrors) and the andersx split files.

Every file carries a pinned sha256; a download is used only after its size and checksum match.
rMD17: Christensen & von Lilienfeld, Mach. Learn.: Sci. Technol. 1, 045018 (2020), CC0.
Units of all rMD17 files: Å, kcal/mol, kcal/mol/Å (crmse's internal units, no conversion).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from crmse_cli.errors import CrmseError, DataError

SOURCES = ("figshare", "andersx")
"""``figshare``: the official archive (Materials Cloud as mirror); ``andersx``: the split files."""

MOLECULES: tuple[str, ...] = (
    "aspirin",
    "azobenzene",
    "benzene",
    "ethanol",
    "malonaldehyde",
    "naphthalene",
    "paracetamol",
    "salicylic",
    "toluene",
    "uracil",
)
N_SPLITS = 5
"""The official splits 01..05 (1000 training and 1000 test rows each)."""

FORMULAS: dict[str, dict[int, int]] = {
    "aspirin": {6: 9, 1: 8, 8: 4},  # C9H8O4, 21 atoms
    "azobenzene": {6: 12, 1: 10, 7: 2},  # C12H10N2, 24
    "benzene": {6: 6, 1: 6},  # C6H6, 12
    "ethanol": {6: 2, 1: 6, 8: 1},  # C2H6O, 9
    "malonaldehyde": {6: 3, 1: 4, 8: 2},  # C3H4O2, 9
    "naphthalene": {6: 10, 1: 8},  # C10H8, 18
    "paracetamol": {6: 8, 1: 9, 7: 1, 8: 2},  # C8H9NO2, 20
    "salicylic": {6: 7, 1: 6, 8: 3},  # C7H6O3, 16
    "toluene": {6: 7, 1: 8},  # C7H8, 15
    "uracil": {6: 4, 1: 4, 7: 2, 8: 2},  # C4H4N2O2, 12
}
"""Element counts (atomic number -> count) of each molecule: catches a file of the wrong molecule."""


@dataclass(frozen=True)
class RemoteFile:
    """One file to download: URLs tried in order (first the primary, then mirrors).

    Attributes:
        filename: name of the file in the cache folder.
        urls: the primary URL, then mirrors.
        sha256: pinned hex checksum; the file is used only if it matches.
        size: expected size in bytes, or None when unknown.
        md5: the checksum the publisher lists (informational).
    """

    filename: str
    urls: tuple[str, ...]
    sha256: str
    size: int | None = None
    md5: str | None = None


OFFICIAL_ARCHIVE = RemoteFile(
    filename="rmd17.tar.bz2",
    urls=(
        # figshare article 12672038 v3 (DOI 10.6084/m9.figshare.12672038), file 23950376.
        "https://figshare.com/ndownloader/files/23950376",
        # Mirror: the Materials Cloud archive record of rMD17 (record 466).
        "https://archive.materialscloud.org/record/file?record_id=466&filename=rmd17.tar.bz2",
        # The same mirror under Materials Cloud's newer record address.
        "https://archive.materialscloud.org/records/pfffs-fff86/files/rmd17.tar.bz2?download=1",
    ),
    sha256="cddeea2ec2c4b22a9de16a9a65a3eeedac5b29da9c99c20bbff0153912bf922b",
    size=1_066_301_513,
    md5="cb1a927628d96f2e966025da4fb63d18",
)
"""The official ``rmd17.tar.bz2`` (1 GB): all ten molecules, 100,000 frames each, and the splits."""

ANDERSX_BASE = "https://raw.githubusercontent.com/andersx/rmd17-npz/master/rmd17-npz/"
"""github.com/andersx/rmd17-npz (CC0, commit 4f6bb0a1): ``rmd17_<mol>_<train|test>_0<k>.npz``,
1000 frames each, the rows of the official split files, same keys as the official npz."""

ANDERSX_SHA256: dict[str, str] = {
    "rmd17_aspirin_test_01.npz": "a3c3b61e782d01e6dd649a126004903f7873e8e7ee5034135abfdb8873be711d",
    "rmd17_aspirin_test_02.npz": "445e26aa2253dcf7e8d9386785c4a9cea69f1e196f54fbd69a969c53177a1a9c",
    "rmd17_aspirin_test_03.npz": "818d5bbb8c8ff17bd049ab09e2614354b0a8a21a1cd5667bc13e934247162a36",
    "rmd17_aspirin_test_04.npz": "724b808f3ed9eb542b864e14982aa2246a4c5098165b86ec8b22e893cd9271c5",
    "rmd17_aspirin_test_05.npz": "03e1e6673698867c73e3be38a37a19b062ed49a4961aee21e67702db869f3d9d",
    "rmd17_aspirin_train_01.npz": "d460f0e43a1a9411b55cdcd9cdbeb9466ae62851ac91392516ab88e4ebc68143",
    "rmd17_aspirin_train_02.npz": "8a5699756e1a9c2bc30c22985cff03b45cb1eb36550941d742d8ce5abfac2d01",
    "rmd17_aspirin_train_03.npz": "9153827bb89e26d43e9e590d35d5572dd0b535a190a3486c320c75494aa94a7c",
    "rmd17_aspirin_train_04.npz": "c086ab96170e5bdc0363674d1e5d6ea9786a7a76fca286eb87f35850b5e21c13",
    "rmd17_aspirin_train_05.npz": "25cc9584b5cd79f63d56d051bab326e18077b3719f8f45807747fbfa6a55e7ed",
    "rmd17_ethanol_test_01.npz": "c3594a0f93d5992e02f9eb671392fb2e5021b3fa4f902417886966d1e4f64e1e",
    "rmd17_ethanol_test_02.npz": "b3276f23d28d4588d008e19ad68e784278caf58e90c7139a11cd7e950b8d3eb4",
    "rmd17_ethanol_test_03.npz": "1ba5586225c0439d5880c4b860e5a84dde042f947b90667178bb6f819241c284",
    "rmd17_ethanol_test_04.npz": "1ec462b9333e7984ac97fefe66294ca51cceb64c8e4afd24d9d8124b81fa6fb0",
    "rmd17_ethanol_test_05.npz": "af80798e2c0b309b8ad65a5c539651089c3d7f8d0528686c4a74e2132ecc9a1f",
    "rmd17_ethanol_train_01.npz": "096946747b8d9dcfa042b44f8debbd3da387dfe1586b659e3be789cc4927316a",
    "rmd17_ethanol_train_02.npz": "b4bd8ed96ffaa31fe50634ab8705684151011033c3dd73927d61931fc8fda863",
    "rmd17_ethanol_train_03.npz": "26a3a378a63486cb8b127f0f4a8af861996a1759d59e9457288cf11d86967cae",
    "rmd17_ethanol_train_04.npz": "14796fc0c778e089292e514aee2592b8c4395f7ce4648c8aa22e19030421d0da",
    "rmd17_ethanol_train_05.npz": "fa8b76b36482fff572fc01f62120403c7e6678f5d13f302362e4c9e1cd57a8a6",
}
"""Pinned from the checksums of verified copies of the public files. Only ethanol and aspirin are
pinned: the other molecules come from the official archive."""


def check_molecule(molecule: str) -> str:
    """Return ``molecule`` if it is an rMD17 molecule, else raise with the list of valid names."""
    if molecule not in MOLECULES:
        raise CrmseError(f"unknown rMD17 molecule {molecule!r}; choose one of: {', '.join(MOLECULES)}")
    return molecule


def check_formula(molecule: str, species: list[int], where: str) -> None:
    """Raise unless the atomic numbers ``species`` have the element counts of ``molecule``."""
    if dict(Counter(int(z) for z in species)) != FORMULAS[molecule]:
        raise DataError(
            f"{where} holds a molecule with atomic numbers {sorted(Counter(species).items())}, "
            f"not {molecule}; pass the file of {molecule}"
        )


def andersx_name(molecule: str, part: str, split: int) -> str:
    """File name of one andersx split file, e.g. ``rmd17_ethanol_train_01.npz``."""
    return f"rmd17_{molecule}_{part}_{split:02d}.npz"


def andersx_molecules() -> list[str]:
    """Molecules whose andersx split files have pinned checksums."""
    return [m for m in MOLECULES if andersx_name(m, "train", 1) in ANDERSX_SHA256]


def andersx_files(molecule: str) -> dict[tuple[str, str], RemoteFile]:
    """The ten split files of ``molecule``: ``{("train" | "test", "01".."05"): RemoteFile}``."""
    check_molecule(molecule)
    if molecule not in andersx_molecules():
        raise CrmseError(
            f"--source andersx has pinned checksums only for {', '.join(andersx_molecules())}; "
            f"fetch {molecule} from the official archive (--source figshare) or --from PATH"
        )
    out: dict[tuple[str, str], RemoteFile] = {}
    for part in ("train", "test"):
        for k in range(1, N_SPLITS + 1):
            name = andersx_name(molecule, part, k)
            out[(part, f"{k:02d}")] = RemoteFile(name, (ANDERSX_BASE + name,), ANDERSX_SHA256[name])
    return out
