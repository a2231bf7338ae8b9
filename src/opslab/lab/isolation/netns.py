"""A network namespace of the trial's own: the kernel's, entered between fork and exec, for a trial whose
bridge to the runner's services (``bridge``) must live in the same network as the harness, outside its
sandbox. A sandboxed trial with no services to reach gets the same from ``bwrap --unshare-net``, without
the fork of the runner's worker that a ``preexec_fn`` costs.

``enter_private_network()`` runs in the child (``preexec_fn``): it unshares the network namespace (as root;
otherwise a user namespace too, which unprivileged users may create on most distributions) and brings up
the new namespace's loopback, so the harness has a working 127.0.0.1 of its own and no route anywhere
else — the host's loopback services included. Any failure raises, the child never execs, and the trial
errors: a trial never runs with more network than configured.

Only async-signal-tolerant work happens here (ctypes calls prepared in advance, one socket and ioctl),
as the child of a possibly multi-threaded parent.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import socket
import struct
import sys

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_LO = struct.pack("16sH14x", b"lo", 0)

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


class NamespaceError(OSError):
    """The private network could not be established (the trial then errors, it never runs unisolated)."""


def enter_private_network() -> None:
    """Move the calling process into a new network namespace with only a loopback interface, up."""
    if _libc is None:
        raise NamespaceError("network namespaces need Linux")
    root = os.geteuid() == 0
    uid, gid = os.geteuid(), os.getegid()
    if _libc.unshare(CLONE_NEWNET if root else CLONE_NEWNET | CLONE_NEWUSER) != 0:
        err = ctypes.get_errno()
        raise NamespaceError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
    if not root:  # the same user inside, so the sandbox started next can map it into its own namespace
        for name, text in (
            ("setgroups", "deny"),
            ("uid_map", f"{uid} {uid} 1"),
            ("gid_map", f"{gid} {gid} 1"),
        ):
            fd = os.open(f"/proc/self/{name}", os.O_WRONLY)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        current = fcntl.ioctl(s, _SIOCGIFFLAGS, _LO)
        name, flags_now = struct.unpack("16sH14x", current)
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH14x", name, flags_now | _IFF_UP))


def probe() -> str | None:
    """Why a private network cannot be had here, or None when it can (checked once per run)."""
    if _libc is None:
        return "network namespaces need Linux"
    from opslab import proc

    # The smallest program there is: an interpreter's start-up would delay every run's first trial.
    true = shutil.which("true", path="/usr/bin:/bin")
    probe = [true] if true else [sys.executable, "-I", "-S", "-c", ""]
    res = proc.run(probe, timeout_s=30, pre_exec=enter_private_network)
    if res.ok:
        return None
    flags = "CLONE_NEWNET" if os.geteuid() == 0 else "CLONE_NEWUSER|CLONE_NEWNET"
    return (
        f"this machine refuses unshare({flags}) (a container without CAP_SYS_ADMIN, or unprivileged user "
        f"namespaces disabled): network isolation cannot be established ({res.start_error or res.returncode})"
    )
