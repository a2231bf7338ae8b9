"""The trial's seccomp filter: its syscall numbers are the kernel's, and an architecture without a
filter fails closed. (What it refuses inside a real sandbox: tests/integration/test_lab_hostile.py.)"""

from __future__ import annotations

import errno
import re
import struct
from pathlib import Path

import pytest

from opslab.lab.isolation import seccomp

HEADERS = {
    "x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    "aarch64": Path("/usr/include/asm-generic/unistd.h"),
}


@pytest.mark.parametrize("arch", sorted(HEADERS))
def test_the_denied_syscalls_have_the_kernels_numbers(arch: str) -> None:
    header = HEADERS[arch]
    if not header.is_file():
        pytest.skip(f"{header} is not installed (linux-libc-dev)")
    numbers = {
        m[1]: int(m[2]) for m in re.finditer(r"#define __NR3?2?6?4?_(\w+)\s+(\d+)", header.read_text())
    }
    table = {**seccomp.DENIED[arch], "clone": seccomp.CLONE[arch], "clone3": seccomp.CLONE3[arch]}
    wrong = {
        name: (nr, numbers.get(name)) for name, nr in table.items() if name in numbers and numbers[name] != nr
    }
    assert wrong == {}
    assert {"setns", "unshare", "mount", "ptrace"} <= set(numbers) & set(table)


def _run(program: bytes, *, arch: int, nr: int, arg0: int = 0) -> tuple[int, int]:
    """What the filter answers for a call (a classic BPF interpreter of the instructions it uses), and how
    many instructions it ran."""
    ops = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    data = {0: nr, 4: arch, 16: arg0}
    a, pc, steps = 0, 0, 0
    while True:
        code, jt, jf, k = ops[pc]
        steps += 1
        if code == 0x20:  # ld [k]
            a, pc = data[k], pc + 1
        elif code == 0x06:  # ret k
            return k, steps
        else:
            taken = {0x15: a == k, 0x25: a > k, 0x35: a >= k, 0x45: bool(a & k)}[code]
            pc += 1 + (jt if taken else jf)


ALLOW, EPERM, ENOSYS = 0x7FFF0000, 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_the_filter_answers_every_syscall_number_as_specified(arch: str) -> None:
    program, audit = seccomp.program(arch), seccomp.AUDIT_ARCH[arch]
    assert len(program) // 8 < 4096  # the kernel's limit
    denied = set(seccomp.DENIED[arch].values())
    longest = 0
    for nr in range(1200):
        answer, steps = _run(program, arch=audit, nr=nr)
        longest = max(longest, steps)
        if nr in denied:
            assert answer == EPERM, nr
        elif nr == seccomp.CLONE3[arch]:
            assert answer == ENOSYS
        else:
            assert answer == ALLOW, nr
    assert longest <= 16  # a tree, not a list of every number
    # Another architecture's calls (the same numbers mean other calls there) are refused whole.
    other = next(a for name, a in seccomp.AUDIT_ARCH.items() if name != arch)
    assert {_run(program, arch=other, nr=nr)[0] for nr in range(0, 1200, 7)} == {EPERM}
    if arch == "x86_64":  # the x32 ABI
        assert _run(program, arch=audit, nr=seccomp.X32_SYSCALL_BIT | 39)[0] == EPERM


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_clone_is_refused_only_when_it_makes_a_namespace(arch: str) -> None:
    program, audit, clone = seccomp.program(arch), seccomp.AUDIT_ARCH[arch], seccomp.CLONE[arch]
    thread = 0x00010000 | 0x00000100 | 0x00000800 | 0x00000200  # CLONE_THREAD | VM | SIGHAND | FS
    for flags in (0, 17, thread, 0x00004000 | 0x00000100):  # a fork, a thread, a vfork
        assert _run(program, arch=audit, nr=clone, arg0=flags)[0] == ALLOW
    for bit in range(32):
        if seccomp.CLONE_NAMESPACES & (1 << bit):
            assert _run(program, arch=audit, nr=clone, arg0=17 | (1 << bit))[0] == EPERM


def test_an_architecture_without_a_filter_fails_closed() -> None:
    with pytest.raises(seccomp.UnsupportedArchitecture, match="riscv64"):
        seccomp.program("riscv64")
