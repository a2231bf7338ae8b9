"""Where the files of finished work go so that any machine can serve them: an ``ArtifactStore``.

A local directory by default (``<data dir>/artifacts``); any fsspec URL by configuration
(``OPSLAB_ARTIFACT_STORE=s3://bucket/opslab``, ``gs://…``, ``file:///mnt/shared/opslab``), so that a lab run
finished by a worker on one machine is read back by the API and dashboard of another. Keys are relative
POSIX paths (``lab/<run id>/manifest.json``); a key that would leave the store is refused.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from opslab.errors import InvalidInput


class ArtifactStore(Protocol):
    @property
    def location(self) -> str:
        """Where it is (a path or a URL), for people."""
        ...

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes:
        """The bytes at ``key``; ``FileNotFoundError`` when there are none."""
        ...

    def exists(self, key: str) -> bool: ...
    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (a folder: ``lab/<run id>``), sorted."""
        ...


def check_key(key: str) -> str:
    """``key`` as a normal relative POSIX path, or ``InvalidInput`` (absolute, ``..``, empty, NUL)."""
    norm = posixpath.normpath(key.replace("\\", "/"))
    if not key or "\x00" in key or norm.startswith(("/", "../")) or norm in (".", ".."):
        raise InvalidInput.for_field("key", f"not a key inside the artifact store: {key[:200]!r}")
    return norm


class LocalArtifactStore:
    """A directory of this machine (the default, ``<data dir>/artifacts``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def location(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # a reader sees the old file or the new one, never half of one

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def keys(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(".tmp")
        )


class FsspecArtifactStore:
    """Any filesystem fsspec knows, by URL (``s3://…`` needs ``s3fs``, ``gs://…`` ``gcsfs``, …)."""

    def __init__(self, url: str) -> None:
        try:
            from fsspec.core import url_to_fs
        except ImportError as exc:  # pragma: no cover - fsspec is a dependency
            raise InvalidInput.for_field("OPSLAB_ARTIFACT_STORE", f"needs fsspec: {exc}") from None
        try:
            self.fs: Any
            self.fs, self.base = url_to_fs(url)
        except (ImportError, ValueError) as exc:
            hint = (
                " (install the filesystem's package, e.g. s3fs for s3://)"
                if isinstance(exc, ImportError)
                else ""
            )
            raise InvalidInput.for_field("OPSLAB_ARTIFACT_STORE", f"{url!r}: {exc}{hint}") from None
        self.url = url

    @property
    def location(self) -> str:
        return self.url

    def _path(self, key: str) -> str:
        return posixpath.join(self.base.rstrip("/"), check_key(key))

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        self.fs.pipe_file(path, data)

    def get(self, key: str) -> bytes:
        data: bytes = self.fs.cat_file(self._path(key))
        return data

    def exists(self, key: str) -> bool:
        return bool(self.fs.isfile(self._path(key)))

    def keys(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not self.fs.isdir(base):
            return []
        root = self.base.rstrip("/") + "/"
        return sorted(p[len(root) :] if p.startswith(root) else p for p in self.fs.find(base))


def open_store(where: str) -> ArtifactStore:
    """A local directory for a path, fsspec for a URL with a scheme (``s3://``, ``file://``)."""
    if "://" in where:
        return FsspecArtifactStore(where)
    return LocalArtifactStore(Path(where))


def put_tree(store: ArtifactStore, prefix: str, folder: Path, files: Iterable[Path]) -> int:
    """Copy ``files`` (inside ``folder``) under ``prefix``; how many."""
    count = 0
    for path in files:
        store.put(f"{prefix}/{path.relative_to(folder).as_posix()}", path.read_bytes())
        count += 1
    return count


def get_tree(store: ArtifactStore, prefix: str, dest: Path) -> int:
    """Materialise every key under ``prefix`` into ``dest`` (replacing what was there); how many."""
    keys = store.keys(prefix)
    staging = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    for key in keys:
        target = staging / posixpath.relpath(key, prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.get(key))
    if keys:
        shutil.rmtree(dest, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, dest)
    return len(keys)
