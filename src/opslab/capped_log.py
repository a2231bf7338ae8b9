"""A child's output stream kept to its first and last bytes, so that no program can fill the disk through
the log the runner keeps of it (a lab trial printing 5 GB keeps 2 MiB and a line saying what was cut).

``proc.run`` gives the child a pipe instead of the file, and, while it waits for the child, copies what
arrives: the first ``keep`` bytes straight to the file, the last ``keep`` in memory (whole chunks, at most
one chunk more than ``keep``); when the child has exited, what is still in the pipe, then the marker and
the tail. A descendant that still holds the pipe then gets EPIPE: the log ends with its program.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field

CHUNK = 1 << 16
# After the program exited: what its pipe can hold, not what a descendant still writes into it.
LAST_READ = 1 << 20


@dataclass
class CappedLog:
    """Where a stream goes (``path``, truncated first) and how much of each end is kept."""

    path: str
    keep: int = 1 << 20
    total: int = field(default=0, init=False)
    _fd: int = field(default=-1, init=False, repr=False)
    _tail: collections.deque[bytes] = field(default_factory=collections.deque, init=False, repr=False)
    _tail_bytes: int = field(default=0, init=False, repr=False)

    @property
    def cut(self) -> int:
        """Bytes written by the program and not kept."""
        return max(0, self.total - 2 * self.keep)

    def open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)

    def take(self, data: bytes) -> None:
        """What the program wrote next."""
        head_room = self.keep - self.total
        self.total += len(data)
        if head_room > 0:
            os.write(self._fd, data[:head_room])
            data = data[head_room:]
            if not data:
                return
        self._tail.append(data)
        self._tail_bytes += len(data)
        while self._tail_bytes - len(self._tail[0]) >= self.keep:
            self._tail_bytes -= len(self._tail.popleft())

    def close(self) -> None:
        """The marker (when something was cut) and the kept tail, then the file is closed."""
        if self._fd < 0:
            return
        try:
            tail = b"".join(self._tail)[-self.keep :] if self._tail else b""
            if self.cut:
                os.write(
                    self._fd,
                    f"\n[opslab: {self.cut} bytes cut here; {self.total} written in all, the first and last "
                    f"{self.keep} kept]\n".encode(),
                )
            while tail:
                tail = tail[os.write(self._fd, tail) :]
        finally:
            os.close(self._fd)
            self._fd = -1


def drain(fd: int, log: CappedLog, *, most: int | None = None) -> bool:
    """Copy what can be read now from ``fd`` (non-blocking) into ``log``, at most ``most`` bytes; False
    at end of file."""
    taken = 0
    while most is None or taken < most:
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return True
        if not data:
            return False
        log.take(data)
        taken += len(data)
    return True
