"""Run artifacts in the seed's layout, each file written atomically (temp file + rename + fsync), and the
typed records (``records``) read back with errors that name the file and the field."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from opslab.errors import NotFound, invalid_from_pydantic

M = TypeVar("M", bound=BaseModel)


def write_json(path: Path, data: Any, *, durable: bool = False) -> None:
    """Atomic write (temp file + rename). ``durable`` also fsyncs: for records whose presence is a promise
    (a finished trial, the manifest), not for every intermediate file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(data, indent=2, default=str), durable=durable)


def write_model(path: Path, model: BaseModel, *, durable: bool = False) -> None:
    """A record as indented JSON, atomically (``durable``: fsynced first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, model.model_dump_json(indent=2), durable=durable)


def read_model(path: Path, model: type[M]) -> M:
    """A record read back; a missing file is ``NotFound``, a broken one ``InvalidInput`` naming the file
    and the field (``manifest.json.status: Input should be 'running' or 'completed'``)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file", details={"path": str(path)}) from None
    return parse_model(raw, model, path.name)


def parse_model(raw: bytes, model: type[M], name: str) -> M:
    """A record from the bytes of the file ``name``, with ``read_model``'s errors."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise invalid_from_pydantic(list(exc.errors(include_url=False)), loc_prefix=(name,)) from None


def write_text(
    path: str | os.PathLike[str], text: str, *, atomic: bool = True, durable: bool = False
) -> None:
    """``text`` and a newline. ``atomic``: through a temp file and a rename, so readers never see half a
    file; ``durable``: fsynced first. A trial's scratch files (in a folder cleared on retry) need neither."""
    target = os.fspath(path)
    out = f"{target}.{os.getpid()}.{secrets.token_hex(4)}.tmp" if atomic or durable else target
    # UTF-8 whatever the locale; plain descriptors: a trial writes several of these, and open()'s file
    # objects cost three more system calls each (fstat, isatty, lseek) and their Python layers.
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        data = memoryview((text + "\n").encode())
        while data:
            data = data[os.write(fd, data) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    if out != target:
        os.replace(out, target)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def canonical_json(data: Any) -> str:
    """The text ``canonical_digest`` hashes: sorted keys, no spaces. A list's is ``[`` + its items' texts
    joined by ``,`` + ``]``, so it can be made item by item."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def canonical_digest(data: Any) -> str:
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def canonical_list_digest(items: list[str]) -> str:
    """``canonical_digest`` of a list whose items' ``canonical_json`` texts are ``items``."""
    return hashlib.sha256(("[" + ",".join(items) + "]").encode()).hexdigest()


def file_digest(path: Path) -> str | None:
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def new_run_id() -> str:
    return f"run_{datetime.now(UTC):%Y%m%d_%H%M%S}_{secrets.token_hex(2)}"


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
