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
_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
_NR, _ARCH, _ARG0 = 0, 4, 16  # offsets in struct seccomp_data (args[0]'s low word, little-endian)


class UnsupportedArchitecture(RuntimeError):
    pass


def architecture() -> str:
    return platform.machine().lower().replace("arm64", "aarch64").replace("amd64", "x86_64")


def program(arch: str | None = None) -> bytes:
    """The filter, as the ``struct sock_filter`` array ``bwrap --seccomp`` reads."""
    arch = arch or architecture()
    if arch not in AUDIT_ARCH:
        raise UnsupportedArchitecture(
            f"no seccomp filter for the {arch} architecture (x86_64 and aarch64 only)"
        )
    eperm, enosys = _ERRNO | errno.EPERM, _ERRNO | errno.ENOSYS
    code: list[tuple[int, int, int, int]] = [
        (_LD_W_ABS, 0, 0, _ARCH),
        (_JEQ, 1, 0, AUDIT_ARCH[arch]),
        (_RET, 0, 0, eperm),
        (_LD_W_ABS, 0, 0, _NR),
    ]
    if arch == "x86_64":
        code += [(_JGE, 0, 1, X32_SYSCALL_BIT), (_RET, 0, 0, eperm)]
    for nr in sorted(DENIED[arch].values()):
        code += [(_JEQ, 0, 1, nr), (_RET, 0, 0, eperm)]
    code += [(_JEQ, 0, 1, CLONE3[arch]), (_RET, 0, 0, enosys)]
    code += [
        (_JEQ, 0, 3, CLONE[arch]),
        (_LD_W_ABS, 0, 0, _ARG0),
        (_JSET, 0, 1, CLONE_NAMESPACES),
        (_RET, 0, 0, eperm),
        (_RET, 0, 0, _ALLOW),
    ]
    return b"".join(struct.pack("=HBBI", *op) for op in code)
