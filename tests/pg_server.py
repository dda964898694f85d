"""A throwaway PostgreSQL server for the test session, started from the binaries on the machine.

The same recipe as `.ci/postgres.sh` (initdb and pg_ctl in a temporary folder, trust
authentication, a free localhost port, the unix socket in that folder, fsync off; as root the
server runs as the ``postgres`` user, since PostgreSQL refuses root), done from Python so that the
README's plain ``pytest`` runs the PostgreSQL tests without any setting. Used by the session
fixture ``pg_server`` in conftest.py only when ``CRMSE_TEST_PG_URL`` is not set.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = (
    "install PostgreSQL's server (Debian/Ubuntu: apt-get install postgresql; it puts initdb and "
    "pg_ctl under /usr/lib/postgresql/*/bin) or set CRMSE_TEST_PG_URL to a server's URL"
)


class NoServer(Exception):
    """No PostgreSQL server can be started here; the message says what to install or set."""


def server_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: the newest /usr/lib/postgresql/*/bin, else PATH's."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", path.parent.name)) or (0,)

    found = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").is_file()]
    if found:
        return max(found, key=version)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(pg_ctl).resolve().parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running throwaway server: its URL (database ``postgres``, user ``crmse``) and how to stop it."""

    url: str
    folder: Path
    pg_ctl: Path
    user: str | None  # run as this user (root runs it as ``postgres``); None: as ourselves

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        _run(
            [str(self.pg_ctl), "-D", str(self.folder / "data"), "-m", "fast", "stop"], self.user, check=False
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def _run(cmd: list[str], user: str | None, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, user=user, timeout=120, cwd="/")
    if check and proc.returncode != 0:
        raise NoServer(f"{Path(cmd[0]).name} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
    return proc


def start() -> Server:
    """Start a throwaway server; raise :class:`NoServer` saying why not (what to install)."""
    try:
        import psycopg  # noqa: F401 - the driver the registry uses for postgresql+psycopg URLs
    except ImportError as exc:
        raise NoServer("psycopg is not installed: pip install 'crmse[postgres]'") from exc
    bin_dir = server_bin()
    if bin_dir is None:
        raise NoServer(f"no PostgreSQL server binaries (initdb, pg_ctl) found: {INSTALL_HINT}")
    user = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise NoServer(
                "as root, PostgreSQL needs a non-root user to run as: create `postgres` "
                "(useradd --system postgres) or set CRMSE_TEST_PG_URL"
            ) from exc
        user = "postgres"
    folder = Path(tempfile.mkdtemp(prefix="crmse-pg."))
    if user is not None:
        shutil.chown(folder, user=user)
    port = _free_port()
    server = Server(f"postgresql+psycopg://crmse@127.0.0.1:{port}/postgres", folder, bin_dir / "pg_ctl", user)
    try:
        _run(
            [str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", "crmse", "-A", "trust", "-E", "UTF8"],
            user,
        )
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
        log = str(folder / "server.log")
        started = _run(
            [
                str(server.pg_ctl),
                "-D",
                str(folder / "data"),
                "-l",
                log,
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ],
            user,
            check=False,
        )
        if started.returncode != 0:
            tail = Path(log).read_text(errors="replace").strip()[-500:] if Path(log).is_file() else ""
            raise NoServer(f"pg_ctl start failed: {tail or started.stderr.strip()[-500:]}")
    except BaseException:
        server.stop()
        raise
    return server
