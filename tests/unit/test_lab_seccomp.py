"""The trial's seccomp filter: its syscall numbers are the kernel's, and an architecture without a
filter fails closed. (What it refuses inside a real sandbox: tests/integration/test_lab_hostile.py.)"""

from __future__ import annotations

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


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_the_program_checks_the_architecture_first_and_allows_last(arch: str) -> None:
    program = seccomp.program(arch)
    ops = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    assert ops[0] == (0x20, 0, 0, 4) and ops[1][3] == seccomp.AUDIT_ARCH[arch]
    assert ops[-1] == (0x06, 0, 0, 0x7FFF0000)
    denied = {op[3] for op in ops if op[0] == 0x15}
    assert set(seccomp.DENIED[arch].values()) <= denied
    assert len(ops) < 4096  # the kernel's limit


def test_an_architecture_without_a_filter_fails_closed() -> None:
    with pytest.raises(seccomp.UnsupportedArchitecture, match="riscv64"):
        seccomp.program("riscv64")
