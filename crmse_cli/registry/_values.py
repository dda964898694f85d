"""Plain-value helpers of the registry: timestamps, JSON-safe configs, row -> entity copies."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TypeVar

from crmse_cli.config import JsonDict

T = TypeVar("T")


def now() -> datetime:
    """The current UTC time without a zone (the registry stores naive UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (a reused pid counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to another user, or the platform cannot tell
    return True


def to_info(cls: type[T], row: object) -> T:
    """A frozen entity ``cls`` with the same-named fields of ORM ``row``."""
    return cls(**{f: getattr(row, f) for f in cls.__dataclass_fields__})  # type: ignore[attr-defined]


def config_hash(config: Mapping[str, object]) -> str:
    """sha256 of ``config`` as canonical JSON (sorted keys, no spaces)."""
    import hashlib

    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def jsonable(data: Mapping[str, object]) -> JsonDict:
    """A JSON round trip, so configs with paths, numpy scalars or inf store the same everywhere."""
    out: JsonDict = json.loads(json.dumps(data, default=_default))
    return out


def _default(obj: object) -> object:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
