"""The trial's sandbox: bubblewrap around every harness of an isolated trial (network ``none`` or
``allowlist_enforced``, and every image), so that a hostile harness — run by root, the common case in
containers and CI — stays inside.

    privilege   a user namespace of its own (root inside is the runner's user outside), no capabilities
                (bounding set emptied), no_new_privs, the seccomp filter (``seccomp``)
    processes   its own PID namespace (it sees and signals only its own processes), IPC, UTS and cgroup
                namespaces; at most ``pids_limit`` tasks (a cgroup of its own, ``pids``: a fork bomb
                stops there)
    files       an empty root holding, read-only: the host's system directories (``/usr``, ``/bin``,
                ``/lib*``, ``/etc`` without password hashes, sudoers and host keys), the harness's
                installation, the PATH directories and ``runtime.sandbox.read_only``; read-write: the
                trial's workspace, ``out/``, home and temporary folders at their own paths; a private
                ``/tmp``, ``/run`` and ``/dev``; ``/proc`` of its own PID namespace with the kernel's
                knobs (``/proc/sys`` …) read-only and its secrets masked. With an image: the image,
                read-only, instead of the host's directories, the workspace at ``/workspace``, the I/O at
                ``/out``.
    network     a namespace of its own: its own loopback (``--unshare-net``); with the runner's services
                to reach, the namespace the bridge made and started it in (``netns``), those services
                only through the bridge outside the sandbox, never a socket on disk.

Nothing here is per trial but the trial's own folders and its admission to its pids group; the rest
is computed once per run.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence

from opslab.lab.isolation import limits, pids, seccomp

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
ETC_SECRETS = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers")
ETC_SECRET_DIRS = ("/etc/ssh", "/etc/sudoers.d", "/etc/ssl/private")
PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs")
PROC_MASKED = ("kcore", "keys", "key-users", "kmsg", "timer_list", "sched_debug", "latency_stats", "kallsyms")
PROC_MASKED_DIRS = ("acpi", "scsi", "asound")
HOSTNAME = "opslab-trial"
CONTROL_DIR, CONTROL_LINK = "/run/opslab-control", "/control.json"
DEFAULT_PIDS_LIMIT = 1024


@functools.cache
def bwrap() -> str:
    """bubblewrap's program, looked up in the ``PATH`` once per process (a spawn of the bare name made a
    failed ``execve`` for each directory before it: eight on a machine with pyenv and cargo)."""
    return shutil.which("bwrap") or "bwrap"


def namespaces() -> list[str]:
    """bubblewrap and its own flags: namespaces and privilege (the network namespace is added by the
    plan)."""
    return [
        bwrap(),
        "--die-with-parent",
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        HOSTNAME,
        "--cap-drop",
        "ALL",
    ]


@functools.cache
def kernel_view() -> tuple[str, ...]:
    """``/proc`` of the trial's PID namespace with the kernel's knobs read-only and its secrets masked,
    and a ``/dev`` of its own (only what exists on this kernel is named)."""
    args = ["--proc", "/proc"]
    for name in PROC_READ_ONLY:
        if os.path.lexists(f"/proc/{name}"):
            args += ["--ro-bind", f"/proc/{name}", f"/proc/{name}"]
    for name in PROC_MASKED:
        if os.path.isfile(f"/proc/{name}"):
            args += ["--ro-bind", "/dev/null", f"/proc/{name}"]
    for name in PROC_MASKED_DIRS:
        if os.path.isdir(f"/proc/{name}"):
            args += ["--tmpfs", f"/proc/{name}", "--remount-ro", f"/proc/{name}"]
    return (*args, "--dev", "/dev")


def system_view() -> list[str]:
    """The host's system directories, read-only (a directory that is a symbolic link stays one)."""
    args: list[str] = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in ETC_SECRETS:
        if os.path.isfile(path):
            args += ["--ro-bind", "/dev/null", path]
    for path in ETC_SECRET_DIRS:
        if os.path.isdir(path) and not os.path.islink(path):
            args += ["--tmpfs", path]
    return args


@functools.lru_cache(maxsize=16)
def host_view(
    program: str, search_path: str, python_path: str, extra: tuple[str, ...], tmp_bytes: int | None = None
) -> tuple[str, ...]:
    """The host as a local trial sees it (see the module docstring): ``program`` is the harness's
    resolved ``argv[0]``, ``search_path`` its PATH, ``python_path`` PYTHONPATH and VIRTUAL_ENV, ``extra``
    the experiment's ``runtime.sandbox.read_only``, ``tmp_bytes`` the size of its /tmp."""
    readable = list(install_roots(program))
    for entry in search_path.split(os.pathsep):
        if os.path.isabs(entry):
            readable.append(os.path.dirname(entry) if os.path.basename(entry) == "shims" else entry)
    readable += [p for p in python_path.split(os.pathsep) if os.path.isabs(p)]
    readable += extra
    args = [*system_view(), *private_tmp(tmp_bytes), "--tmpfs", "/run"]
    for path in outermost(p for p in readable if os.path.isdir(p) or os.path.isfile(p)):
        if not _under(path, SYSTEM_DIRS):
            args += ["--ro-bind", path, path]
    return (*args, *kernel_view())


def private_tmp(size: int | None) -> list[str]:
    """A /tmp of the trial's own, in memory, of at most ``size`` bytes."""
    return [*(["--size", str(size)] if size else []), "--tmpfs", "/tmp"]


def install_roots(program: str) -> set[str]:
    """Where ``program`` is installed (``/opt/x`` for ``/opt/x/bin/tool``), as given and resolved: a
    virtual environment's interpreter needs both the environment and the Python it was made from."""
    roots = set()
    for path in {program, os.path.realpath(program)}:
        if os.path.isabs(path):
            folder = os.path.dirname(path)
            if os.path.basename(folder) in ("bin", "sbin", "shims"):
                folder = os.path.dirname(folder)
            if folder != "/":
                roots.add(folder)
    return roots


def outermost(paths: Iterable[str]) -> list[str]:
    """Normalised paths without those inside another of them."""
    out: list[str] = []
    for path in sorted({os.path.normpath(p) for p in paths}):
        if not out or not _under(path, (out[-1],)):
            out.append(path)
    return out


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def trial_mounts(
    *, ws: str, out: str, env: Mapping[str, str], control_dir: str | None, seen: tuple[str, str] | None = None
) -> list[str]:
    """The trial's own folders, read-write: the workspace and ``out/`` (at ``seen`` = (workspace, out)
    paths inside an image, else their own), and the home and temporary folders the environment names
    (in the trial's folder: bound; elsewhere, as the ``passthrough`` profile leaves them: an empty
    tmpfs)."""
    ws_at, out_at = seen or (ws, out)
    args = ["--bind", ws, ws_at, "--bind", out, out_at]
    trial_dir = os.path.dirname(ws)
    for path in dict.fromkeys(env.get(var, "") for var in ("HOME", "TMPDIR")):
        if not os.path.isabs(path) or path in ("/", "/tmp") or _under(path, SYSTEM_DIRS):
            continue
        if _under(path, (trial_dir,)) and os.path.isdir(path):
            args += ["--bind", path, path]
        elif not _under(path, (trial_dir,)):
            args += ["--tmpfs", path]
    if control_dir is not None:
        args += [
            "--ro-bind",
            control_dir,
            CONTROL_DIR,
            "--symlink",
            f"{CONTROL_DIR}/control.json",
            CONTROL_LINK,
        ]
    return [*args, "--chdir", ws_at]


def zygote_mounts(
    *, ws: str, out: str, env: Mapping[str, str], tmp_bytes: int | None
) -> tuple[list[list[str]], tuple[str, ...]]:
    """``trial_mounts`` as a worker's zygote makes them in the trial's own mount namespace (``zygote``):
    a fresh ``/tmp``, ``/run`` and ``/dev/shm``, the run's trial folders covered and this trial's own
    bound back. Also the folders outside the trial's that it gets as an empty tmpfs (home, TMPDIR),
    which the worker's sandbox must hold as mount points."""
    size = f",size={tmp_bytes}" if tmp_bytes else ""
    ops = [["tmpfs", "/tmp", f"mode=1777{size}"], ["tmpfs", "/run", "mode=755"]]
    ops.append(["tmpfs", "/dev/shm", "mode=1777"])
    trial_dir = os.path.dirname(ws)
    binds, outside = [["bind", ws, ws], ["bind", out, out]], []
    for path in dict.fromkeys(env.get(var, "") for var in ("HOME", "TMPDIR")):
        if not os.path.isabs(path) or path in ("/", "/tmp") or _under(path, SYSTEM_DIRS):
            continue
        if _under(path, (trial_dir,)) and os.path.isdir(path):
            binds.append(["bind", path, path])
        elif not _under(path, (trial_dir,)):
            ops.append(["tmpfs", path, "mode=755"])
            outside.append(path)
    return [*ops, ["tmpfs", os.path.dirname(trial_dir), "mode=755"], *binds], tuple(outside)


class Admission:
    """How a trial's sandbox enters its pids group and gets its resource limits without a ``pre_exec``
    (which would cost a fork of the runner's worker per trial, where a vfork does): bubblewrap names its
    sandboxed process on ``--info-fd`` and, its setup done, waits on ``--block-fd`` before it starts
    anything; the runner moves that process into the group and sets its limits (``started``), then lets
    it go. Everything the harness starts is born in the group, under the limits."""

    def __init__(self, group: pids.TrialGroup | None, rlimits: list[tuple[int, int]] | None = None) -> None:
        self.group, self.rlimits = group, rlimits or []
        self._info_read, self._info_write = os.pipe()
        self._block_read, self._block_write = os.pipe()
        self._open = [self._info_read, self._info_write, self._block_read, self._block_write]

    def args(self) -> list[str]:
        return ["--info-fd", str(self._info_write), "--block-fd", str(self._block_read)]

    @property
    def fds(self) -> tuple[int, int]:
        """The child's ends, to pass to it."""
        return self._info_write, self._block_read

    def started(self, pid: int) -> None:
        """In the runner, once bubblewrap (``pid``) runs: its sandboxed process into the group, then on."""
        self._close(self._info_write, self._block_read)  # EOF on the info pipe if bubblewrap dies
        info = b""
        while b"}" not in info:
            chunk = os.read(self._info_read, 4096)
            if not chunk:
                raise OSError(f"bubblewrap (pid {pid}) ended before its sandbox was ready")
            info += chunk
        child = int(json.loads(info)["child-pid"])
        if self.group is not None:
            self.group.admit(child)
        limits.apply(child, self.rlimits)
        os.write(self._block_write, b"1")

    def close(self) -> None:
        self._close(*self._open)

    def _close(self, *fds: int) -> None:
        for fd in fds:
            if fd in self._open:
                self._open.remove(fd)
                os.close(fd)


def seccomp_fd() -> int:
    """A fresh descriptor holding the filter for one trial (bubblewrap reads it to its end, then the
    runner closes it); close-on-exec, so only the child it is passed to inherits it."""
    return memory_fd("opslab-seccomp", _program())


MFD_EXEC = 0x0010  # memfd_create: executable even where vm.memfd_noexec says otherwise (Linux 6.3)


def memory_fd(name: str, data: bytes, *, executable: bool = False) -> int:
    """A close-on-exec descriptor of an in-memory file holding ``data``, read from its start (what a
    child is handed at a number of its own: ``pass_fds``), sealed: no one can change it once it is
    handed over. ``executable``: a program to run from it, where the kernel makes memory files
    non-executable by default too."""
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    try:
        fd = os.memfd_create(name, flags | (MFD_EXEC if executable else 0))
    except OSError as exc:
        if not executable or exc.errno != errno.EINVAL:
            raise
        fd = os.memfd_create(name, flags)  # before Linux 6.3: executable, and no MFD_EXEC
    try:
        if os.write(fd, data) != len(data):
            raise OSError(errno.EIO, f"short write to the {name} memory file")
        seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


@functools.cache
def _program() -> bytes:
    return seccomp.program()


def chain(*steps: Callable[[], None] | None) -> Callable[[], None] | None:
    """One ``pre_exec`` that runs each given step in order (None when none is given)."""
    present = [s for s in steps if s is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def run_all() -> None:
        for step in present:
            step()

    return run_all
