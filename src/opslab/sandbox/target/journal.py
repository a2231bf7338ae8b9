"""The target's order journal: one line appended per order served, in its state dir, as a real service
writes an access or audit log. It is how a full disk reaches the target: the append fails with ENOSPC and
the order with it (507), and the health check's write probe fails the same way."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

ROTATE_BYTES = 1024 * 1024  # one old file kept beside the current one: the journal stays within 2 MB
PROBE = ".health-probe"


class Journal:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "orders.journal"
        self._lock = threading.Lock()

    def append(self, line: str) -> None:
        """Append ``line`` (an ``OSError`` when the disk is full or the folder is gone)."""
        data = (line.rstrip("\n") + "\n").encode()
        with self._lock:
            try:
                if self.path.stat().st_size > ROTATE_BYTES:
                    os.replace(self.path, self.path.with_suffix(".journal.1"))
            except FileNotFoundError:
                pass
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    def check(self) -> tuple[bool, str]:
        """Can the state dir be written (a small file written, synced and removed), and how much is free?"""
        probe = self.folder / PROBE
        try:
            free_mb = shutil.disk_usage(self.folder).free / (1024 * 1024)
        except OSError as exc:
            return False, f"{self.folder}: {exc.strerror or exc}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, b"x" * 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            return (
                False,
                f"cannot write {self.folder}: [Errno {exc.errno}] {exc.strerror}; {free_mb:.1f} MB free",
            )
        finally:
            probe.unlink(missing_ok=True)
        return True, f"{free_mb:.0f} MB free in {self.folder}"
