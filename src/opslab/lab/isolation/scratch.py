"""A run's private folder in the system's temporary directory (``opslab-run-*``, mode 0700): the egress
proxy's and the collector's Unix sockets live there (a socket path must fit in 108 bytes; run folders can
be deeper). No trial sees it: sandboxed trials have a ``/tmp`` of their own and reach the sockets only
through the bridge outside their sandbox.

Its owner holds an exclusive ``flock`` on ``owner.lock`` inside for as long as it runs, so the kernel
says whether the owner is alive (kill -9 included, and whatever PID namespace it ran in): ``sweep``,
called at the start of every run, removes the folders whose lock nobody holds. A folder is created under
a hidden name and renamed once locked, so a sweep never sees one unlocked while it is being made.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile

PREFIX, STAGING = "opslab-run-", ".opslab-new-"
LOCK = "owner.lock"
CREATE_TRIES = 3


class RunScratch:
    """``with RunScratch() as scratch: scratch.path / "proxy.sock" …`` — removed on exit."""

    def __init__(self, base: str | None = None) -> None:
        self.base = base or tempfile.gettempdir()
        self.path, self._fd = self._create()

    def _create(self) -> tuple[str, int]:
        for _ in range(CREATE_TRIES):
            staging = tempfile.mkdtemp(prefix=STAGING, dir=self.base)
            try:
                fd = os.open(os.path.join(staging, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:  # swept between mkdtemp and open: try again
                continue
            fcntl.flock(fd, fcntl.LOCK_EX)
            final = os.path.join(self.base, PREFIX + os.path.basename(staging)[len(STAGING) :])
            try:
                os.rename(staging, final)
            except FileNotFoundError:
                os.close(fd)
                continue
            return final, fd
        raise OSError(f"could not make a private folder under {self.base}")

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def close(self) -> None:
        if self._fd < 0:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> RunScratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sweep(base: str | None = None) -> list[str]:
    """Remove the private folders of runners that are gone; the paths removed."""
    base = base or tempfile.gettempdir()
    removed: list[str] = []
    try:
        names = os.listdir(base)
    except OSError:
        return removed
    for name in names:
        if not name.startswith((PREFIX, STAGING)):
            continue
        folder = os.path.join(base, name)
        if _owner_gone(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _owner_gone(folder: str) -> bool:
    """True when ``folder`` is ours (a real folder holding the lock file) and nobody holds its lock."""
    try:
        if os.path.islink(folder) or not os.path.isdir(folder):
            return False
        fd = os.open(os.path.join(folder, LOCK), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return False
    else:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)
