"""The workspace: one folder that holds the registry database, the data cache and run artifacts.

Resolution order for the folder: the ``--home`` option, then ``$CRMSE_HOME``, then
``$XDG_DATA_HOME/crmse`` (default ``~/.local/share/crmse``). The database URL is
``$CRMSE_DB_URL`` if set, else ``sqlite:///<home>/crmse.db``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from crmse_cli.errors import CrmseError


def default_home() -> Path:
    """The workspace folder used when neither ``--home`` nor ``CRMSE_HOME`` is given."""
    env = os.environ.get("CRMSE_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "crmse"


@dataclass(frozen=True)
class Workspace:
    """Paths of one crmse workspace. Creating the object does not touch the disk.

    Attributes:
        home: the workspace folder.
        trust_code: the user passed ``--trust-code``: checkpoints and ``.model`` files that store
            a model as a pickle may be loaded even when crmse did not write them in this
            workspace (docs/architecture.md, "Trust model"). Off by default.
        compile_forces: the samplers and the CRMSE chains take their forces through
            ``torch.compile`` (``model/compiled.py``; ``--compile/--no-compile``), with the
            compiled kernels cached under ``cache/torch-compile``.
    """

    home: Path
    trust_code: bool = False
    compile_forces: bool = False

    @property
    def compile_cache_dir(self) -> Path:
        """Inductor's compiled kernels (FX graph and AOT autograd caches), reused across runs."""
        return self.cache_dir / "torch-compile"

    @classmethod
    def resolve(cls, home: Path | str | None = None, *, trust_code: bool = False) -> Workspace:
        """The workspace at ``home`` (expanded, absolute), or the default one when None."""
        path = Path(home).expanduser().resolve() if home else default_home().resolve()
        return cls(path, trust_code=trust_code)

    @property
    def db_url(self) -> str:
        """The registry database: ``CRMSE_DB_URL`` or ``sqlite:///<home>/crmse.db``."""
        return os.environ.get("CRMSE_DB_URL") or f"sqlite:///{self.home / 'crmse.db'}"

    @property
    def cache_dir(self) -> Path:
        """Downloaded archives and source files, keyed by file name."""
        return self.home / "cache"

    @property
    def datasets_dir(self) -> Path:
        """Converted dataset files (``<name>.npz``)."""
        return self.home / "datasets"

    def run_dir(self, run_id: str) -> Path:
        """Checkpoints and artifacts of one run."""
        return self.home / "runs" / run_id

    def _folders(self) -> tuple[Path, ...]:
        return (self.home, self.cache_dir, self.datasets_dir, self.home / "runs")

    def blocker(self) -> str | None:
        """Why the workspace cannot be used (a file where one of its folders goes), else None.

        Creates nothing (``crmse doctor`` asks this of a workspace it must not change).
        """
        for d in self._folders():
            found = next((p for p in (d, *d.parents) if p.exists() and not p.is_dir()), None)
            if found is not None:
                return (
                    f"cannot use workspace {self.home}: {found} is a file, not a folder; "
                    "point --home / CRMSE_HOME at a folder"
                )
        return None

    def ensure(self) -> Workspace:
        """Create the workspace folders; a one-line error when that is impossible."""
        for d in self._folders():
            try:
                d.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as exc:
                raise CrmseError(self.blocker() or f"cannot create {d}: {exc}") from exc
            except OSError as exc:
                raise CrmseError(
                    f"cannot create {d} ({exc.strerror or exc}); the workspace {self.home} is not "
                    "writable: use --home / CRMSE_HOME on a writable folder"
                ) from exc
        return self
