"""Trial workspaces: a copy of the project without run state or bulk, and file-digest snapshots.

The project is scanned once per run (`Template`); each trial's workspace is materialised from that list,
and its post-run snapshot re-hashes only files whose size or mtime differ from the project's (copies
keep the original mtime, so any write by the harness shows), as git and rsync decide what changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SKIP = {
    ".lab",
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".opslab",
    ".tox",
    "dist",
    "build",
}


# Files up to this size are kept in memory by the template and written straight into each workspace.
INLINE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Entry:
    digest: str
    size: int
    mtime_ns: int
    atime_ns: int
    mode: int
    content: bytes | None  # None: copied from the project file


@dataclass
class Template:
    """The project's copyable tree: directories, files with digests, and symlinks, scanned once."""

    root: str
    dirs: list[str] = field(default_factory=list)
    files: dict[str, Entry] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)

    @classmethod
    def scan(
        cls, root: Path, *, exclude: tuple[Path, ...] = (), skip: frozenset[str] | set[str] = SKIP
    ) -> Template:
        """``exclude``: files and folders left out of every workspace (the dataset: each trial gets its
        task in ``trial_input.json``; an image the trials run on; either can be gigabytes); ``skip``:
        folder names left out."""
        t = cls(str(root))
        skip_files = {os.path.realpath(p) for p in exclude}

        def kept(dirpath: str, d: str) -> bool:
            if d in skip:
                return False
            return not skip_files or os.path.realpath(os.path.join(dirpath, d)) not in skip_files

        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if kept(dirpath, d))
            rel_dir = os.path.relpath(dirpath, root)
            for d in dirnames:
                full = os.path.join(dirpath, d)
                rel = os.path.normpath(os.path.join(rel_dir, d))
                if os.path.islink(full):
                    t.links.append(rel)
                else:
                    t.dirs.append(rel)
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.normpath(os.path.join(rel_dir, name))
                if skip_files and os.path.realpath(full) in skip_files:
                    continue
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    t.links.append(rel)
                elif stat.S_ISREG(st.st_mode):
                    t.files[rel] = _entry(full, st)
        return t

    def digests(self) -> dict[str, str]:
        return {rel: e.digest for rel, e in self.files.items()}

    def materialize(self, dest: str | os.PathLike[str]) -> None:
        """Copy the project into ``dest`` (contents, mode and mtime; symlinks as symlinks)."""
        base = os.fspath(dest)
        os.mkdir(base)
        for rel in self.dirs:
            os.mkdir(os.path.join(base, rel))
        for rel, e in self.files.items():
            target = os.path.join(base, rel)
            if e.content is None:
                shutil.copyfile(os.path.join(self.root, rel), target)
                os.chmod(target, e.mode)
                os.utime(target, ns=(e.atime_ns, e.mtime_ns))
                continue
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, e.mode)
            try:
                view = memoryview(e.content)
                while view:
                    view = view[os.write(fd, view) :]
                os.utime(fd, ns=(e.atime_ns, e.mtime_ns))
                os.fchmod(fd, e.mode)  # the mode given to open() is filtered by the umask
            finally:
                os.close(fd)
        for rel in self.links:
            os.symlink(os.readlink(os.path.join(self.root, rel)), os.path.join(base, rel))

    def snapshot(self, ws: str | os.PathLike[str]) -> dict[str, str]:
        """Digests of the regular files under ``ws``, hashing only those that differ from the template.
        Symlinks are not followed (nor recorded), and folders named in ``SKIP`` not entered."""
        digests: dict[str, str] = {}
        folders = [(os.fspath(ws), "")]  # (path, its path relative to ws with a trailing "/")
        while folders:
            path, prefix = folders.pop()
            try:
                listing = os.scandir(path)
            except OSError:  # a folder the harness made unreadable: left out, as os.walk would
                continue
            with listing as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name not in SKIP:
                            folders.append((entry.path, prefix + entry.name + "/"))
                        continue
                    st = entry.stat(follow_symlinks=False)
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    rel = prefix + entry.name
                    known = self.files.get(rel)
                    if known is not None and known.size == st.st_size and known.mtime_ns == st.st_mtime_ns:
                        digests[rel] = known.digest
                    else:
                        try:
                            digests[rel] = _digest(entry.path)
                        except OSError:  # gone, or swapped for a link, since it was listed
                            continue
        return digests


def diff(pre: dict[str, str], post: dict[str, str]) -> dict[str, Any]:
    return {
        "added": sorted(set(post) - set(pre)),
        "removed": sorted(set(pre) - set(post)),
        "modified": sorted(k for k in set(pre) & set(post) if pre[k] != post[k]),
    }


def _entry(path: str, st: os.stat_result) -> Entry:
    mode = stat.S_IMODE(st.st_mode)
    if st.st_size <= INLINE_BYTES:
        with open(path, "rb") as f:
            content = f.read()
        return Entry(
            hashlib.sha256(content).hexdigest(), len(content), st.st_mtime_ns, st.st_atime_ns, mode, content
        )
    return Entry(_digest(path), st.st_size, st.st_mtime_ns, st.st_atime_ns, mode, None)


# A file a trial left that is larger than this is recorded by size and time, not hashed: a sparse
# terabyte (``truncate -s 1T``) costs the harness nothing and would cost the runner an hour.
HASH_AT_MOST = 1 << 30


def _digest(path: str) -> str:
    """The file's sha256, read without following a link or blocking on a FIFO left in its place."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > HASH_AT_MOST:
            return f"unhashed:{st.st_size}:{st.st_mtime_ns}"
        h = hashlib.sha256()
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
        return h.hexdigest()
