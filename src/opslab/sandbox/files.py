"""The files a running sandbox world keeps under ``<data dir>/sandbox/``: the three tokens (mode 0600),
``endpoints.json`` (what a responder is given: the target and the action server, never the chaos
server), the action server's ``audit.jsonl``, the target's state dir and the children's logs."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from opslab.errors import InvalidInput


class Endpoints(BaseModel):
    schema_version: int = 1
    target: str | None = None
    actions: str | None = None


@dataclass(frozen=True)
class SandboxFiles:
    root: Path

    @classmethod
    def under(cls, data_dir: Path) -> SandboxFiles:
        return cls(data_dir / "sandbox")

    @property
    def sandbox_token(self) -> Path:
        return self.root / "sandbox-token"

    @property
    def action_token(self) -> Path:
        return self.root / "action-token"

    @property
    def chaos_token(self) -> Path:
        return self.root / "chaos-token"

    @property
    def endpoints(self) -> Path:
        return self.root / "endpoints.json"

    @property
    def audit(self) -> Path:
        return self.root / "audit.jsonl"

    @property
    def target_dir(self) -> Path:
        return self.root / "target"

    def log(self, part: str) -> Path:
        return self.root / "logs" / f"{part}.log"

    def prepare(self) -> None:
        for d in (self.root, self.target_dir, self.root / "logs"):
            d.mkdir(parents=True, exist_ok=True)

    def write_endpoints(self, endpoints: Endpoints) -> None:
        tmp = self.endpoints.with_suffix(".tmp")
        tmp.write_text(json.dumps(endpoints.model_dump(exclude_none=True), indent=2) + "\n")
        os.replace(tmp, self.endpoints)


def ensure_token(path: Path) -> str:
    """The token in ``path``; a fresh one (``secrets.token_urlsafe``, file mode 0600) when there is none."""
    if path.is_file() and (existing := path.read_text().strip()):
        os.chmod(path, 0o600)
        return existing
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    return token


def read_token(path: Path, *, option: str = "--token-file") -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise InvalidInput.for_field(option, f"cannot read the token file {path}: {exc.strerror}") from None
    if not token:
        raise InvalidInput.for_field(option, f"the token file {path} is empty")
    return token
