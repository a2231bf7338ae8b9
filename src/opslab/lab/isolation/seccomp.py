"""The trial's seccomp filter: a classic BPF program that bubblewrap installs just before it executes the
harness (``bwrap --seccomp FD``), the belt to the sandbox's braces (no capabilities, namespaces of its
own).

Refused with ``EPERM``: joining or making namespaces (``setns``, ``unshare``, ``clone`` with a
``CLONE_NEW*`` flag), every mount call, ``ptrace`` and reading or writing another process's memory,
kernel modules, ``kexec``, ``reboot``, ``bpf``, ``perf_event_open``, keyrings, ``userfaultfd``, io_uring
(whose operations seccomp cannot see), handles to files by inode, ``syslog``, the clock, quotas, swap,
host and domain names. ``clone3`` answers ``ENOSYS`` (its flags are out of a filter's reach), so C
libraries fall back to ``clone``, which is checked. Another architecture's calls (32-bit ``int 0x80`` on
x86-64, the x32 ABI) are refused whole. Built for x86-64 and arm64; elsewhere the sandbox fails closed.
"""

from __future__ import annotations

import errno
import platform
import struct
from collections.abc import Iterable

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# Syscall numbers by architecture (x86-64: asm/unistd_64.h; arm64: the generic table, asm-generic/unistd.h).
DENIED: dict[str, dict[str, int]] = {
    "x86_64": {
        "ptrace": 101,
        "setns": 308,
        "unshare": 272,
        "mount": 165,
        "umount2": 166,
        "pivot_root": 155,
        "chroot": 161,
        "process_vm_readv": 310,
        "process_vm_writev": 311,
        "kexec_load": 246,
        "kexec_file_load": 320,
        "init_module": 175,
        "finit_module": 313,
        "delete_module": 176,
        "reboot": 169,
        "swapon": 167,
        "swapoff": 168,
        "acct": 163,
        "bpf": 321,
        "perf_event_open": 298,
        "keyctl": 250,
        "add_key": 248,
        "request_key": 249,
        "userfaultfd": 323,
        "open_by_handle_at": 304,
        "name_to_handle_at": 303,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "mount_setattr": 442,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "quotactl": 179,
        "quotactl_fd": 443,
        "syslog": 103,
        "lookup_dcookie": 212,
        "kcmp": 312,
        "pidfd_getfd": 438,
        "iopl": 172,
        "ioperm": 173,
        "settimeofday": 164,
        "clock_settime": 227,
        "clock_adjtime": 305,
        "adjtimex": 159,
        "vhangup": 153,
        "sethostname": 170,
        "setdomainname": 171,
        "fanotify_init": 300,
    },  # fmt: skip
    "aarch64": {
        "ptrace": 117,
        "setns": 268,
        "unshare": 97,
        "mount": 40,
        "umount2": 39,
        "pivot_root": 41,
        "chroot": 51,
        "process_vm_readv": 270,
        "process_vm_writev": 271,
        "kexec_load": 104,
        "kexec_file_load": 294,
        "init_module": 105,
        "finit_module": 273,
        "delete_module": 106,
        "reboot": 142,
        "swapon": 224,
        "swapoff": 225,
        "acct": 89,
        "bpf": 280,
        "perf_event_open": 241,
        "keyctl": 219,
        "add_key": 217,
        "request_key": 218,
        "userfaultfd": 282,
        "open_by_handle_at": 265,
        "name_to_handle_at": 264,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "mount_setattr": 442,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "quotactl": 60,
        "quotactl_fd": 443,
        "syslog": 116,
        "lookup_dcookie": 18,
        "kcmp": 272,
        "pidfd_getfd": 438,
        "settimeofday": 170,
        "clock_settime": 112,
        "clock_adjtime": 266,
        "adjtimex": 171,
        "vhangup": 58,
        "sethostname": 161,
        "setdomainname": 162,
        "fanotify_init": 262,
    },  # fmt: skip
}
CLONE = {"x86_64": 56, "aarch64": 220}
CLONE3 = {"x86_64": 435, "aarch64": 435}
X32_SYSCALL_BIT = 0x40000000
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

# Classic BPF, as <linux/filter.h> and <linux/seccomp.h> spell it.
_LD_W_ABS, _JEQ, _JGT, _JGE, _JSET, _RET = 0x20, 0x15, 0x25, 0x35, 0x45, 0x06
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
_NR, _ARCH, _ARG0 = 0, 4, 16  # offsets in struct seccomp_data (args[0]'s low word, little-endian)
# At most this many ranges of numbers are tested one after another; more are split in two by number.
_LEAF = 3


class UnsupportedArchitecture(RuntimeError):
    pass


def architecture() -> str:
    return platform.machine().lower().replace("arm64", "aarch64").replace("amd64", "x86_64")


def program(arch: str | None = None) -> bytes:
    """The filter, as the ``struct sock_filter`` array ``bwrap --seccomp`` reads.

    The syscall number is looked up in a binary tree of the ranges of numbers that are not simply
    allowed (consecutive denied numbers make one range): ~6 comparisons for any call, where a list of
    every number took ~110 for an allowed one. What a filter costs each process it is installed in
    grows with how far the kernel must run it: it runs the filter for every syscall number as it
    installs it (to cache the numbers that are always allowed), and JIT-compiles it; a trial's first
    process installs it each time (~0.13 ms of CPU with the list, ~0.05 ms with the tree)."""
    arch = arch or architecture()
    if arch not in AUDIT_ARCH:
        raise UnsupportedArchitecture(
            f"no seccomp filter for the {arch} architecture (x86_64 and aarch64 only)"
        )
    asm = _Assembler()
    asm.op(_LD_W_ABS, _ARCH)
    asm.jump(_JEQ, AUDIT_ARCH[arch], false="deny")
    asm.op(_LD_W_ABS, _NR)
    if arch == "x86_64":
        asm.jump(_JGE, X32_SYSCALL_BIT, true="deny")
    ranges = [(lo, hi, "deny") for lo, hi in _runs(DENIED[arch].values())]
    ranges += [(CLONE3[arch], CLONE3[arch], "enosys"), (CLONE[arch], CLONE[arch], "clone")]
    _tree(asm, sorted(ranges))
    asm.label("clone")  # allowed unless it makes a namespace
    asm.op(_LD_W_ABS, _ARG0)
    asm.jump(_JSET, CLONE_NAMESPACES, true="deny")
    asm.op(_RET, _ALLOW)
    asm.label("enosys")
    asm.op(_RET, _ERRNO | errno.ENOSYS)
    asm.label("deny")
    asm.op(_RET, _ERRNO | errno.EPERM)
    return asm.assemble()


def _runs(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """``numbers`` as ranges of consecutive numbers (first, last), in order."""
    runs: list[tuple[int, int]] = []
    for n in sorted(set(numbers)):
        if runs and runs[-1][1] + 1 == n:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def _tree(asm: _Assembler, ranges: list[tuple[int, int, str]]) -> None:
    """Code that jumps to each range's label when the number (loaded) is in it, and allows it otherwise:
    a few ranges tested in turn, more split at the middle one's first number."""
    if len(ranges) > _LEAF:
        middle = len(ranges) // 2
        upper = asm.fresh()
        asm.jump(_JGE, ranges[middle][0], true=upper)
        _tree(asm, ranges[:middle])
        asm.label(upper)
        _tree(asm, ranges[middle:])
        return
    for lo, hi, target in ranges:
        if lo == hi:
            asm.jump(_JEQ, lo, true=target)
            continue
        past = asm.fresh()
        asm.jump(_JGE, lo, false=past)
        asm.jump(_JGT, hi, true=past, false=target)
        asm.label(past)
    asm.op(_RET, _ALLOW)


class _Assembler:
    """Classic BPF with named jump targets, resolved to the forward offsets it takes (0-255)."""

    def __init__(self) -> None:
        self._code: list[tuple[int, str | None, str | None, int]] = []
        self._labels: dict[str, int] = {}
        self._made = 0

    def fresh(self) -> str:
        """A new label's name."""
        self._made += 1
        return f"_{self._made}"

    def op(self, code: int, k: int) -> None:
        self._code.append((code, None, None, k))

    def jump(self, code: int, k: int, *, true: str | None = None, false: str | None = None) -> None:
        """A conditional jump; a target left out is the next instruction."""
        self._code.append((code, true, false, k))

    def label(self, name: str) -> None:
        self._labels[name] = len(self._code)

    def assemble(self) -> bytes:
        out = []
        for at, (code, true, false, k) in enumerate(self._code):
            out.append(struct.pack("=HBBI", code, self._offset(at, true), self._offset(at, false), k))
        return b"".join(out)

    def _offset(self, at: int, target: str | None) -> int:
        if target is None:
            return 0
        offset = self._labels[target] - at - 1
        if not 0 <= offset <= 255:
            raise ValueError(f"a jump of {offset} instructions: classic BPF jumps 0-255 forward")
        return offset
