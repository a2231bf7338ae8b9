"""What a trial leaves in its folders, read as data and nothing more.

A harness controls every name under its ``out/`` and its workspace: a file there may be a symbolic link to
a host file (which the runner, outside the sandbox, could read for it), a FIFO that blocks a reader, a
device, or a sparse terabyte. So the runner opens such a file the way container runtimes open a
container's root filesystem:

- from a folder it made itself, one component at a time, never following a symbolic link
  (``O_NOFOLLOW`` relative to the folder's descriptor; ``..`` is refused);
- without blocking, and only if it is a regular file (``fstat``);
- reading at most a cap, and saying when it cut.

A refusal or a cut is a value (``Taken``) that the record reports; nothing here raises for what a trial
did.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

MIB = 1024 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class Taken:
    """What was read of a trial's file: ``data`` (None when nothing was read), the file's ``size``, whether
    only the first ``limit`` bytes were read (``cut``), and why nothing was read (``refused``: a link, not
    a regular file) or None when the file is simply not there (``missing``)."""

    data: bytes | None
    size: int = 0
    cut: bool = False
    refused: str | None = None

    @property
    def missing(self) -> bool:
        return self.data is None and self.refused is None


def kind_of(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def open_beneath(root: str, relative: str, *, flags: int = _FILE_FLAGS) -> int:
    """A descriptor of ``root/relative``, reached without following any symbolic link below ``root``
    (which the runner made). ``OSError`` (``ELOOP`` for a link) when that cannot be done."""
    parts = relative.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise OSError(0, f"{relative!r} is not a plain path below its folder")
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
        return os.open(parts[-1], flags, dir_fd=fd)
    finally:
        os.close(fd)


def read_beneath(root: str, relative: str, *, limit: int, tail: bool = False) -> Taken:
    """At most ``limit`` bytes of the regular file ``root/relative`` (see ``open_beneath``): its first,
    or with ``tail`` its last."""
    try:
        fd = open_beneath(root, relative)
    except FileNotFoundError:
        return Taken(None)
    except OSError as exc:
        return Taken(None, refused=_why(root, relative, exc))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return Taken(None, refused=f"{relative}: {kind_of(st.st_mode)}, not read")
        want = min(st.st_size, limit)
        if tail and st.st_size > limit:
            os.lseek(fd, st.st_size - limit, os.SEEK_SET)
        chunks, got = [], 0
        while got < want:
            chunk = os.read(fd, min(want - got, 4 * MIB))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return Taken(b"".join(chunks), size=st.st_size, cut=st.st_size > limit)
    finally:
        os.close(fd)


def _why(root: str, relative: str, exc: OSError) -> str:
    """One line for an open the runner refused: a symbolic link (where), or the system's reason."""
    path = root
    for part in relative.split("/"):
        path = os.path.join(path, part)
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            break
        if stat.S_ISLNK(mode):
            shown = os.path.relpath(path, root)
            return f"{relative}: {shown} is a symbolic link, not followed (no trial's link ever is)"
    return f"{relative}: not read ({exc.strerror or exc})"


def within(root: str, path: str) -> str | None:
    """``path`` (absolute, or relative to ``root``) as a plain path below ``root`` — or None when it
    leaves it, climbs with ``..``, or passes through a symbolic link. Nothing is followed to decide."""
    if "\0" in path:
        return None
    relative = os.path.relpath(path, root) if os.path.isabs(path) else path
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    current = root
    for part in parts:
        current = os.path.join(current, part)
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return None
        except FileNotFoundError:
            return "/".join(parts)  # not there (yet): nothing to follow
        except OSError:
            return None
    return "/".join(parts)
