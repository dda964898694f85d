"""Engine creation and schema migration (Alembic, configured in code: no alembic.ini needed).

SQLite gets WAL journaling, a 30 s busy timeout and foreign keys, so several ``crmse``
processes can write to one workspace at once. Any other URL (``CRMSE_DB_URL``, e.g. PostgreSQL)
is used as given; PostgreSQL (``postgresql+psycopg://user@host/db``, ``pip install
crmse[postgres]``) is tested in CI against a real server.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.exc import ArgumentError, DatabaseError, IntegrityError, InterfaceError, OperationalError

from crmse_cli.errors import CrmseError

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
MIGRATION_LOCK_KEY = 0x63726D7365  # "crmse": the PostgreSQL advisory lock held while migrating


def migrations_dir() -> Path:
    """The Alembic scripts: ``migrations/`` beside this package, else ``crmse_cli._migrations``.

    The checkout comes first so that code imported from a checkout (``PYTHONPATH``, a git
    worktree) migrates with its own scripts even when an editable install points elsewhere.
    """
    here = Path(__file__).resolve().parents[2] / "migrations"
    if (here / "env.py").is_file() and (here / "versions" / "0001_initial.py").is_file():
        return here
    try:
        path = Path(str(resources.files("crmse_cli._migrations")))
        if (path / "env.py").is_file():
            return path
    except ModuleNotFoundError:
        pass
    raise CrmseError("crmse's database migrations are missing from this installation; reinstall crmse")


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.close()


def _sqlite_read_only_pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA query_only = ON")
    cur.close()


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for other databases and in-memory ones)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages; works on unparsable URLs)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _create(
    url: str,
    *,
    creator: Callable[[], sqlite3.Connection] | None = None,
    connect_args: dict[str, float] | None = None,
    pool_pre_ping: bool = False,
) -> Engine:
    """``create_engine`` with a one-line error for a URL that names no usable database."""
    shown = masked_url(url)
    try:
        if creator is not None:
            return create_engine(url, creator=creator)
        return create_engine(url, connect_args=connect_args or {}, pool_pre_ping=pool_pre_ping)
    except ModuleNotFoundError as exc:  # the dialect is known, its driver is not installed
        raise CrmseError(
            f"the driver of the registry URL {shown!r} is not installed ({exc}); install it "
            "(PostgreSQL: `pip install 'crmse[postgres]'`, URL postgresql+psycopg://...)"
        ) from exc
    except ArgumentError as exc:  # NoSuchModuleError (unknown dialect) included
        raise CrmseError(
            f"the registry URL {shown!r} is not usable ({str(exc).splitlines()[0]}); set CRMSE_DB_URL to "
            "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB or sqlite:///PATH, or unset it"
        ) from exc


def server_error(exc: BaseException, url: str) -> CrmseError | None:
    """A one-line error for a database server that cannot be reached or refuses us, else None.

    Connection refused, a wrong port or host, a missing database, a failed login and a server
    that went away mid-run are :class:`OperationalError` / :class:`InterfaceError`; deadlocks and
    serialization failures (retried by callers) are not translated.
    """
    if not isinstance(exc, OperationalError | InterfaceError):
        return None
    reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
    if "deadlock" in reason.lower() or "serializ" in reason.lower():
        return None
    return CrmseError(
        f"cannot use the registry database {masked_url(url)} ({reason}); check that the server is "
        "running and CRMSE_DB_URL (host, port, database, user), then rerun"
    )


def sqlite_blocker(url: str) -> str | None:
    """Why the SQLite file of ``url`` cannot be a registry (a folder in its place), else None."""
    path = sqlite_path(url)
    if path is not None and path.is_dir():
        return (
            f"the registry {path} is a folder, not a database file; move it away or point "
            "--home / CRMSE_HOME at another workspace"
        )
    return None


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and the pragmas above.

    With ``read_only`` a SQLite file is opened without any write (not even the WAL switch):
    for listing a workspace that this user cannot write. When the folder cannot hold SQLite's
    shared-memory file, the file is opened as immutable.
    """
    path = sqlite_path(url)
    blocker = sqlite_blocker(url)
    if blocker is not None:
        raise CrmseError(blocker)
    if read_only and path is not None:
        shm = path.with_name(path.name + "-shm")
        immutable = not os.access(path.parent, os.W_OK) and not shm.exists()
        uri = f"file:{quote(str(path))}?mode=ro" + ("&immutable=1" if immutable else "")
        engine = _create(
            "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        )
        event.listen(engine, "connect", _sqlite_read_only_pragmas)
        return engine
    if url.startswith("sqlite"):
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CrmseError(
                    f"cannot create the folder of the registry {path} ({exc.strerror or exc}); "
                    "point --home / CRMSE_HOME at a writable folder"
                ) from exc
        engine = _create(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return _create(url, pool_pre_ping=True)


def integrity_problems(engine: Engine, *, full: bool = False) -> list[str]:
    """SQLite's own check of the database file: [] when sound, else its complaints.

    ``quick_check`` (default) reads every page once without checking index contents: about as
    costly as reading the file. ``full`` runs ``integrity_check``. Other databases: [].
    """
    if engine.dialect.name != "sqlite":
        return []
    pragma = "integrity_check" if full else "quick_check"
    try:
        with engine.connect() as conn:
            rows = [str(r[0]) for r in conn.exec_driver_sql(f"PRAGMA {pragma}")]
    except DatabaseError as exc:
        return [str(getattr(exc, "orig", exc)).strip().splitlines()[0]]
    if rows == ["ok"]:
        return []
    lines = [line.strip() for row in rows for line in row.splitlines()]
    return [line for line in lines if line and not line.startswith("***")]


def alembic_config(engine: Engine) -> Config:
    """An Alembic config for the packaged migrations that runs on ``engine``."""
    from alembic.config import Config  # deferred: alembic loads only when a schema is checked

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision(engine: Engine) -> str:
    """The newest revision the packaged migrations know."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's revision; None for a database Alembic never touched."""
    with engine.connect() as conn:
        return _revision(conn)


def _revision(conn: Connection) -> str | None:
    """The revision in ``alembic_version``; a one-line error when the table holds several."""
    from alembic.runtime.migration import MigrationContext

    heads = MigrationContext.configure(conn).get_current_heads()
    if len(heads) > 1:
        raise CrmseError(
            f"the registry database records {len(heads)} schema versions ({', '.join(sorted(heads))}) "
            "in table alembic_version, which must hold one row; delete the stale rows (keep the "
            "newest revision) or restore the database from a backup"
        )
    return heads[0] if heads else None


@contextmanager
def migrating(conn: Connection) -> Iterator[None]:
    """Hold ``conn`` for a migration and commit it when the body succeeds.

    On SQLite, foreign keys are off meanwhile (SQLite's documented way to rebuild a table that
    others reference, which batch migrations do) and checked before the commit; the pragma must
    be set outside a transaction, so enter this before ``BEGIN``. A failed migration discards
    the connection instead of returning it to the pool with foreign keys off.
    """
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
    try:
        yield
        if sqlite:
            bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if bad:
                raise CrmseError(
                    f"the migration would leave {len(bad)} rows of table {bad[0][0]} pointing at missing "
                    "rows; nothing was changed (report this database to the crmse developers)"
                )
        conn.commit()
    except BaseException:
        conn.invalidate()
        raise
    if sqlite:
        conn.exec_driver_sql("PRAGMA foreign_keys = ON")
        conn.commit()


def upgrade(engine: Engine, *, read_only: bool = False) -> None:
    """Bring the database to the newest schema, or refuse a newer/unknown one in one line.

    Several processes may open a fresh workspace at once: on SQLite the check and the migration
    run inside one ``BEGIN IMMEDIATE`` transaction, on PostgreSQL inside one transaction holding
    an advisory lock, so one process migrates and the others wait, then find the schema at head.
    """
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = alembic_config(engine)
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head()
    current = current_revision(engine)
    if current == head:
        return  # the common case, without taking the write lock
    if read_only:
        raise CrmseError(
            f"the registry's schema ({current or 'empty'}) needs an upgrade to {head}, which needs "
            "write access; run a crmse command once where the workspace is writable"
        )
    with engine.connect() as conn, migrating(conn):
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":  # DDL is transactional; released at commit
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
        current = _revision(conn)
        known = {rev.revision for rev in script.walk_revisions()}
        if current is not None and current not in known:
            raise CrmseError(
                f"database schema {current} is newer than this crmse knows; "
                "upgrade crmse or use another --home"
            )
        if current is None and inspect(conn).has_table("runs"):
            raise CrmseError("the database has crmse tables but no schema version; use a fresh --home")
        if current != head:
            log.info("migrating the registry from %s to %s", current, head)
            cfg.attributes["connection"] = conn
            try:
                command.upgrade(cfg, "head")
            except IntegrityError as exc:
                raise CrmseError(
                    f"the database holds rows the schema {head} refuses "
                    f"({str(exc.orig).splitlines()[0]}); nothing was changed: fix them or use a fresh --home"
                ) from exc
