"""Run artifacts in the seed's layout, each file written atomically (temp file + rename + fsync)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opslab import __version__

SCHEMA_VERSION = 1


def write_json(path: Path, data: Any, *, durable: bool = False) -> None:
    """Atomic write (temp file + rename). ``durable`` also fsyncs: for records whose presence is a promise
    (a finished trial, the manifest), not for every intermediate file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(data, indent=2, default=str), durable=durable)


def write_text(
    path: str | os.PathLike[str], text: str, *, atomic: bool = True, durable: bool = False
) -> None:
    """``text`` and a newline. ``atomic``: through a temp file and a rename, so readers never see half a
    file; ``durable``: fsynced first. A trial's scratch files (in a folder cleared on retry) need neither."""
    target = os.fspath(path)
    out = f"{target}.{os.getpid()}.{secrets.token_hex(4)}.tmp" if atomic or durable else target
    with open(out, "w") as f:
        f.write(text)
        f.write("\n")
        if durable:
            f.flush()
            os.fsync(f.fileno())
    if out != target:
        os.replace(out, target)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def canonical_digest(data: Any) -> str:
    return hashlib.sha256(
        json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


def file_digest(path: Path) -> str | None:
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def new_run_id() -> str:
    return f"run_{datetime.now(UTC):%Y%m%d_%H%M%S}_{secrets.token_hex(2)}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def runner_info() -> dict[str, str]:
    return {
        "runner": "opslab",
        "runner_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
