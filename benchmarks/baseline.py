"""Import the model package of another git revision beside the working tree's, for A/B timing.

Timings on a shared machine drift by 2x within minutes, so a before/after comparison is only
fair when both versions run in one process, interleaved. Python cannot import two packages named
``crmse_cli``, so ``load_baseline(rev)`` extracts ``crmse_cli/`` of ``rev`` with ``git archive``
into a temporary folder, renames it ``crmse_base_<rev>`` and rewrites its absolute imports to the
new name. Benchmarks only: nothing in the package uses this.
"""

from __future__ import annotations

import importlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_baseline(rev: str) -> ModuleType:
    """The ``crmse_cli`` package of git revision ``rev`` (with ``.model``), imported as ``crmse_base_<sha>``."""
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", rev], check=True, capture_output=True, text=True
    ).stdout.strip()
    name = f"crmse_base_{sha}"
    if name in sys.modules:
        return sys.modules[name]
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", sha, "crmse_cli"], check=True, capture_output=True
    ).stdout
    root = Path(tempfile.mkdtemp(prefix="crmse-baseline-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    package = root / name
    (root / "crmse_cli").rename(package)
    pattern = re.compile(r"\bcrmse_cli\b")
    for path in package.rglob("*.py"):
        path.write_text(pattern.sub(name, path.read_text()))
    sys.path.insert(0, str(root))
    package_module = importlib.import_module(name)
    importlib.import_module(f"{name}.model")
    return package_module
