"""The trial zygote's own program: run inside a worker's sandbox as its PID 1 (``python -I -S -c``, the
standard library only), it starts that worker's trials one after another, each in fresh namespaces of
its own, and never runs anything of theirs itself.

Per trial (one request on the control socket: the trial's socket and its stdout and stderr):

    read      the request (argv, environment, working directory, mounts, uid and gid) from the trial's
              socket (``decode``: the wire format ``zygote.encode`` writes); nothing of it is executed here
    fork      the trial's first process, which
              - enters a user namespace of its own (root inside is the worker's user outside), a mount
                namespace (so the trial's mounts are its own) and an IPC namespace
              - covers the run's trial folders and binds back only its own, mounts a fresh /tmp, /run,
                /dev/shm and home, and changes to its workspace
              - sets the trial's resource limits, says it is ready (the runner reads its pid from the
                socket's credentials) and waits for the runner's go
              - enters a cgroup namespace, drops every capability (bounding, ambient, permitted), sets
                no_new_privs, installs the seccomp filter and executes the harness
    wait      for it (and reap what it leaves), then SIGKILL every other process of the worker's PID
              namespace (``kill(-1)`` from PID 1 spares only PID 1) and report the exit status

The zygote is in the worker's cgroup (the runner puts it there before the first trial), so every trial
is born in it: its pids and memory limits hold from the first instruction, without moving a process
between cgroups per trial (which stalls every fork on the machine). The zygote is not dumpable (no
trial can read or write its memory through ``/proc``) and, as PID 1, takes no signal from inside its
namespace that it has no handler for: a trial cannot stop it.

``zygote.c`` is the same program compiled (the one used where there is a C compiler): a change to one is
a change to both.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import gc
import os
import resource
import signal
import socket
import struct
import sys
from typing import Any

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUSER, CLONE_NEWIPC = 0x20000, 0x2000000, 0x10000000, 0x8000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38
PR_SET_SECCOMP, SECCOMP_MODE_FILTER, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 22, 2, 47, 4
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}
SYS_RT_SIGACTION, KERNEL_NSIG = {"x86_64": 13, "aarch64": 134}, 64
LINUX_CAPABILITY_VERSION_3 = 0x20080522
REQUEST_MAX = 1 << 20
WIRE_VERSION = b"opslab-zygote/1"
RLIMITS_MAX, MOUNTS_MAX, STRINGS_MAX = 16, 1024, 1 << 16
CAP_LAST = 63  # set by main from /proc/sys/kernel/cap_last_cap

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def prctl(option: int, arg: int = 0) -> None:
    check(libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl({option})")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [None if v is None else v.encode() for v in (source, target, fstype, data)]
    check(libc.mount(enc[0], enc[1], enc[2], flags, enc[3]), f"mount {target}")


def write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def decode(body: bytes) -> dict[str, Any]:
    """A request from its wire form (see ``zygote.encode``); ValueError if it is not one."""
    fields = body.split(b"\0")
    if len(fields) < 2 or fields.pop() != b"" or fields[0] != WIRE_VERSION:
        raise ValueError("not a request")
    at = 1

    def take() -> str:
        nonlocal at
        if at >= len(fields):
            raise ValueError("the request ends early")
        at += 1
        return os.fsdecode(fields[at - 1])

    def number(most: int) -> int:
        text = take()
        if not (text.isascii() and text.isdigit()) or int(text) > most:
            raise ValueError(f"not a number of at most {most}: {text[:40]!r}")
        return int(text)

    flags = take()
    if flags not in ("", "probe"):
        raise ValueError(f"unknown flags {flags[:40]!r}")
    request: dict[str, Any] = {"probe": flags == "probe", "uid": number(2**32 - 2), "gid": number(2**32 - 2)}
    request["cwd"] = take()
    request["rlimits"] = [(number(RLIMITS_MAX - 1), number(2**64 - 1)) for _ in range(number(RLIMITS_MAX))]
    request["mounts"] = [[take(), take(), take()] for _ in range(number(MOUNTS_MAX))]
    if any(kind not in ("bind", "tmpfs") for kind, _, _ in request["mounts"]):
        raise ValueError("a mount of an unknown kind")
    request["argv"] = [take() for _ in range(number(STRINGS_MAX))]
    env = [take().partition("=") for _ in range(number(STRINGS_MAX))]
    if any(not name or not eq for name, eq, _ in env):
        raise ValueError("an environment entry without a name")
    request["env"] = {name: value for name, _, value in env}
    if at != len(fields):
        raise ValueError("fields after the request")
    return request


def enter_namespaces(uid: int, gid: int) -> None:
    """A user, mount and IPC namespace of this process's own; ``uid``/``gid`` stay what they were."""
    check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC), "unshare")
    write("/proc/self/setgroups", "deny")
    write("/proc/self/uid_map", f"{uid} {uid} 1")
    write("/proc/self/gid_map", f"{gid} {gid} 1")
    mount(None, "/", None, MS_REC | MS_PRIVATE)


def place(mounts: list[list[str]]) -> None:
    """The trial's mounts in order: ``["bind", source, target]`` (sources opened before anything is
    covered), ``["tmpfs", target, options]``."""
    sources = {m[1]: os.open(m[1], os.O_PATH | os.O_CLOEXEC) for m in mounts if m[0] == "bind"}
    for kind, first, second in mounts:
        if kind == "tmpfs":
            os.makedirs(first, exist_ok=True)
            mount("tmpfs", first, "tmpfs", MS_NOSUID | MS_NODEV, second)
        else:
            os.makedirs(second, exist_ok=True)
            mount(f"/proc/self/fd/{sources[first]}", second, None, MS_BIND)
    for fd in sources.values():
        os.close(fd)


def drop_privileges(seccomp: bytes) -> None:
    """No capability left in any set, no_new_privs, then the seccomp filter (as bubblewrap's order)."""
    for cap in range(CAP_LAST + 1):
        prctl(PR_CAPBSET_DROP, cap)
    check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "ambient capabilities")
    header = struct.pack("Ii", LINUX_CAPABILITY_VERSION_3, 0)
    data = bytes(24)  # two empty __user_cap_data_struct: effective, permitted, inheritable
    check(libc.syscall(SYS_CAPSET[os.uname().machine], header, data), "capset")
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    program = ctypes.create_string_buffer(seccomp, len(seccomp))
    fprog = struct.pack("@HP", len(seccomp) // 8, ctypes.addressof(program))
    check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fprog, 0, 0), "seccomp")


def default_signals() -> None:
    """Every signal back to its default and none blocked, those the C library keeps for itself (32, 33)
    included: Python's ``signal`` refuses them, the kernel does not, and an ignored one is inherited
    through exec (make ignores them, for one)."""
    dfl = ctypes.create_string_buffer(32)  # the kernel's struct sigaction: SIG_DFL, no flags, no mask
    number = SYS_RT_SIGACTION[os.uname().machine]
    for sig in range(1, KERNEL_NSIG + 1):
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            check(libc.syscall(number, sig, dfl, None, 8), f"rt_sigaction({sig})")
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def start_trial(request: dict[str, Any], conn: socket.socket, out: int, err: int, seccomp: bytes) -> None:
    """In the trial's first process: never returns."""
    try:
        default_signals()
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
        enter_namespaces(request["uid"], request["gid"])
        place(request["mounts"])
        os.chdir(request["cwd"])
        os.setsid()
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        for which, value in request["rlimits"]:
            resource.setrlimit(which, (value, value))
        conn.send(b"R")  # the runner reads this process's pid from the message's credentials
        if conn.recv(1) != b"G":
            os._exit(125)
        check(libc.unshare(CLONE_NEWCGROUP), "unshare cgroup")
        drop_privileges(seccomp)
        if request["probe"]:
            os._exit(0)
        os.execvpe(request["argv"][0], request["argv"], request["env"])  # PATH searched, as bubblewrap does
    except BaseException as exc:  # noqa: BLE001 - whatever it was, the runner is told and the trial ends
        with_reason = f"E{type(exc).__name__}: {exc}"[:4000]
        try:
            conn.send(with_reason.encode(errors="replace"))
        finally:
            os._exit(127)


def serve(control: socket.socket, seccomp: bytes) -> None:
    while True:
        fds = array.array("i")
        try:
            space = socket.CMSG_SPACE(3 * fds.itemsize)
            msg, ancillary, _, _ = control.recvmsg(1, space, socket.MSG_CMSG_CLOEXEC)
        except InterruptedError:
            continue
        if not msg:
            return  # the runner closed its end: the worker is done
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            continue
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=fds[0])
        run_one(conn, fds[1], fds[2], seccomp)


def run_one(conn: socket.socket, out: int, err: int, seccomp: bytes) -> None:
    with conn:
        try:
            body, _, flags, _ = conn.recvmsg(REQUEST_MAX)
            if flags & socket.MSG_TRUNC:
                raise ValueError("the request is over REQUEST_MAX")
            request = decode(body)
        except (OSError, ValueError):
            os.close(out)
            os.close(err)
            return
        pid = os.fork()
        if pid == 0:
            start_trial(request, conn, out, err, seccomp)
        os.close(out)
        os.close(err)
        status = reap(pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)  # from PID 1: every process of the namespace but this one
        reap(None)
        with contextlib.suppress(OSError):
            conn.send(b"X" + str(status).encode())


def reap(pid: int | None) -> int:
    """Wait for ``pid`` (reaping every other child meanwhile) and return its wait status; with None,
    reap until no child is left."""
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if pid is not None and done == pid:
            return status


def main() -> None:
    global CAP_LAST
    control_fd, seccomp_fd = int(sys.argv[1]), int(sys.argv[2])
    if os.getpid() != 1:  # kill(-1) after each trial is safe only as PID 1 of the sandbox's namespace
        sys.exit("opslab-zygote: not PID 1 of its own namespace")
    prctl(PR_SET_DUMPABLE, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # PID 1 takes only the signals it handles: none
    with open("/proc/sys/kernel/cap_last_cap") as f:  # noqa: PTH123 - the standard library only
        CAP_LAST = int(f.read())
    with os.fdopen(seccomp_fd, "rb") as f:
        seccomp = f.read()
    control = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=control_fd)
    os.set_inheritable(control_fd, False)
    # No collection in the zygote or its children: it makes no cycles, and a collection in a forked child
    # would write to every object's header (a copy of each page the parent shares with it).
    gc.disable()
    gc.freeze()
    control.send(b"H")  # the runner reads this process's pid and puts it in the worker's cgroup
    if control.recv(1) != b"G":
        return
    serve(control, seccomp)


if __name__ == "__main__":
    main()
