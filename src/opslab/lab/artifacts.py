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
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with tmp.open("w") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


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
