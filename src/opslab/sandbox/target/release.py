"""What of the target outlives its process: the deployed version (``deploy.json``) and the feature flags
(``flags.json``) in its state dir, each a typed file with a ``schema_version``, replaced atomically."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from opslab.errors import Conflict

Version = Literal["v1", "v2"]
M = TypeVar("M", bound=BaseModel)


class Deploy(BaseModel):
    schema_version: Literal[1] = 1
    version: Version = "v1"
    previous: Version | None = None


class OpsFlags(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1] = 1
    new_ranking: bool = False


def _read(path: Path, model: type[M]) -> M:
    try:
        return model.model_validate_json(path.read_text())
    except (OSError, ValidationError):
        return model()  # absent (a fresh world) or unreadable: start from the defaults


def _write(path: Path, model: BaseModel) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(model.model_dump_json(indent=2) + "\n")
    os.replace(tmp, path)


class Release:
    """The deployed version and the flags, read at start and written on every change."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self._deploy_path, self._flags_path = state_dir / "deploy.json", state_dir / "flags.json"
        self._lock = threading.Lock()
        self.deploy = _read(self._deploy_path, Deploy)
        self.flags = _read(self._flags_path, OpsFlags)

    @property
    def version(self) -> Version:
        return self.deploy.version

    def roll_out(self, version: Version) -> Deploy:
        with self._lock:
            if version != self.deploy.version:
                self.deploy = Deploy(version=version, previous=self.deploy.version)
                _write(self._deploy_path, self.deploy)
            return self.deploy

    def roll_back(self) -> Deploy:
        with self._lock:
            if self.deploy.previous is None:
                raise Conflict(f"nothing to roll back to: {self.deploy.version} is the first release")
            self.deploy = Deploy(version=self.deploy.previous, previous=self.deploy.version)
            _write(self._deploy_path, self.deploy)
            return self.deploy

    def set_flags(self, *, new_ranking: bool) -> OpsFlags:
        with self._lock:
            self.flags = OpsFlags(new_ranking=new_ranking)
            _write(self._flags_path, self.flags)
            return self.flags
