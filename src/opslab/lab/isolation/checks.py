"""Refusing, before the first trial, a plan this machine cannot establish: each layer is tried for real
(once per process, when it works), and a refusal names the layer that failed in one line."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from opslab import proc
from opslab.errors import InvalidInput, PolicyViolation, Unavailable
from opslab.lab.isolation import netns, pids, privilege, sandbox, seccomp
from opslab.lab.isolation.plan import IsolationPlan
from opslab.lab.isolation.sandbox import DEFAULT_PIDS_LIMIT

T = TypeVar("T")

ENGINE_PROBE_S = 20.0
PROBE_S = 30.0


def preflight(plan: IsolationPlan) -> None:
    """Refuse, before the first trial, a plan this machine cannot establish."""
    if plan.network == "allowlist_enforced" and not plan.allowed_hosts:
        raise InvalidInput.for_field(
            "runtime.network.allowed_hosts", "allowlist_enforced needs at least one host (or use none)"
        )
    if plan.sandbox == "oci":
        _check_engine(plan)
        return
    field = "runtime.sandbox.image" if plan.sandbox == "rootfs" else "runtime.network.mode"
    # The two probes are processes of their own: run at once, not one after the other (the run's
    # start-up waits for both). The network's refusal, if any, is still the one reported first.
    network = _probed("network", netns.probe) if plan.private_network else None
    try:
        problem = (
            sandbox_problem(plan.pids_limit, private_network=plan.private_network)
            if plan.sandboxed
            else privilege_problem()
        )
    finally:
        network_problem = network.result() if network is not None else None
    if network_problem:
        raise Unavailable(network_problem, details={"field": "runtime.network.mode", "mode": plan.network})
    if problem:
        layer = "sandbox" if plan.sandboxed else "privilege"
        raise Unavailable(problem, details={"field": field, "layer": layer})


def probe_ahead(pids_limit: int = DEFAULT_PIDS_LIMIT, *, private_network: bool = True) -> None:
    """Start the probes a sandboxed plan's ``preflight`` makes (by default those of the default plan,
    network ``none``), each on a thread of its own, before the plan is known: a run's start-up imports
    and resolves its experiment meanwhile (~0.1 s on one core) rather than then waiting for them. The
    preflight takes the answers it needs and starts what it finds missing; a probe no plan asks for
    decides nothing."""
    with _ahead_lock:
        if private_network and "network" not in _ahead:
            _ahead["network"] = _started(netns.probe)
        key = _sandbox_key(pids_limit, private_network)
        if key not in _worked and key not in _ahead:
            _ahead[key] = _started(lambda: _sandbox_probe(pids_limit, private_network))


_ahead: dict[str, Future[Any]] = {}  # probes started before their plan was known, by what they answer
_ahead_lock = threading.Lock()


def _probed(key: str, probe: Callable[[], T]) -> Future[T]:
    """The probe started ahead for ``key``, taken once (a later plan probes again), else ``probe`` started
    now."""
    with _ahead_lock:
        ahead = _ahead.pop(key, None)
    return ahead if ahead is not None else _started(probe)


def preflight_started(plan: IsolationPlan) -> Callable[[], None]:
    """``preflight`` on a thread of its own (its probes are processes: the caller's thread may work
    meanwhile); call the result to wait for it, which raises the refusal if there is one."""
    return _started(lambda: preflight(plan)).result


def _started(call: Callable[[], T]) -> Future[T]:
    """``call`` on a thread of its own; the future's ``result`` waits for it (raising what it raised)."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(call())
        except BaseException as exc:  # noqa: BLE001 - raised again by result(), in the caller's thread
            future.set_exception(exc)

    threading.Thread(target=run, name="opslab-preflight", daemon=True).start()
    return future


def _check_engine(plan: IsolationPlan) -> None:
    if plan.engine is None:
        raise Unavailable(
            f"image {plan.image!r} needs podman or docker, and neither is installed; or give a root "
            "filesystem (a directory or an exported tarball) for the daemonless backend",
            details={"field": "runtime.sandbox.image"},
        )
    probe = proc.run([plan.engine, "info"], timeout_s=ENGINE_PROBE_S)
    if not probe.ok:
        raise Unavailable(
            f"{plan.engine} is installed but cannot run containers (`{plan.engine} info` failed); "
            "give a root filesystem (a directory or an exported tarball) for the daemonless backend",
            details={"field": "runtime.sandbox.image", "engine": plan.engine},
        )
    if plan.network == "allowlist_enforced":
        raise PolicyViolation(
            "allowlist_enforced is enforced by the daemonless backend only; with an OCI engine use "
            "none or full, or give a root filesystem",
            details={"field": "runtime.network.mode"},
        )


def sandbox_problem(pids_limit: int, *, private_network: bool = False) -> str | None:
    """Why the trial sandbox cannot be had here (naming the layer), or None when it can;
    ``private_network``: with a network namespace of its own, as bubblewrap makes it for a trial."""
    if _sandbox_works(pids_limit, private_network):
        return None
    if shutil.which("bwrap") is None:
        return (
            "the trial sandbox needs bubblewrap, which is not installed (apt-get install bubblewrap): "
            "trials of network none, allowlist_enforced and images do not run without it"
        )
    try:
        seccomp.program()
    except seccomp.UnsupportedArchitecture as exc:
        return f"the trial sandbox's seccomp layer cannot be had here: {exc}"
    if pids_limit and os.geteuid() == 0 and pids.hierarchy() is None:
        return (
            "the trial sandbox's pids limit needs the cgroup pids controller, which this machine does not "
            "give this runner (no writable pids hierarchy); set runtime.sandbox.pids_limit: 0 to run without"
        )
    layers: list[tuple[str, list[str]]] = [
        ("bubblewrap", [sandbox.bwrap(), "--ro-bind", "/", "/"]),
        ("user, PID, IPC and UTS namespaces", [*sandbox.namespaces(), "--ro-bind", "/", "/"]),
        ("the read-only host view", [*sandbox.namespaces(), *sandbox.system_view(), "--tmpfs", "/tmp"]),
        ("/proc of its own with the kernel's knobs read-only", _full(with_seccomp=False)),
        ("the seccomp filter", _full(with_seccomp=True)),
    ]
    if private_network:
        layers.append(("a network namespace of its own", _full(with_seccomp=True, network=True)))
    for layer, argv in layers:
        why = _try(argv, pids_limit, seccomp_fd="--seccomp" in argv)
        if why is not None:
            return f"the trial sandbox cannot be established here: {layer} failed ({why}); no trial runs"
    return "the trial sandbox cannot be established here (bubblewrap failed); no trial runs"


_worked: set[str] = set()  # layers that worked in this process: each is tried once


def _sandbox_key(pids_limit: int, private_network: bool) -> str:
    return f"sandbox:{pids_limit}:{private_network}"


def _sandbox_works(pids_limit: int, private_network: bool) -> bool:
    """One sandbox as every trial gets it, around ``true`` (its answer taken from ``probe_ahead`` when
    that started it)."""
    key = _sandbox_key(pids_limit, private_network)
    if key in _worked:
        return True
    return bool(_probed(key, lambda: _sandbox_probe(pids_limit, private_network)).result())


def _sandbox_probe(pids_limit: int, private_network: bool) -> bool:
    key = _sandbox_key(pids_limit, private_network)
    if shutil.which("bwrap") is None:
        return False
    try:
        seccomp.program()
    except seccomp.UnsupportedArchitecture:
        return False
    if pids_limit and os.geteuid() == 0 and pids.hierarchy() is None:
        return False
    if _try(_full(with_seccomp=True, network=private_network), pids_limit, seccomp_fd=True) is None:
        _worked.add(key)
        return True
    return False


def _full(*, with_seccomp: bool, network: bool = False) -> list[str]:
    view = [*sandbox.system_view(), "--tmpfs", "/tmp", *sandbox.kernel_view()]
    own = ["--unshare-net"] if network else []
    return [*sandbox.namespaces(), *own, *view, *(["--seccomp", "{fd}"] if with_seccomp else [])]


def _try(argv: list[str], pids_limit: int, *, seccomp_fd: bool) -> str | None:
    """None when ``argv + [true]`` runs, else the last line bubblewrap printed. The pids group is
    joined as a trial joins it: through bubblewrap with a network of its own, else before exec."""
    true = shutil.which("true", path="/usr/bin:/bin") or "/bin/true"
    fds = (sandbox.seccomp_fd(),) if seccomp_fd else ()
    argv = [a.replace("{fd}", str(fds[0])) if fds else a for a in argv]
    base = pids.hierarchy() if pids_limit else None
    group = pids.TrialGroup(base, pids_limit) if base else None
    admission = sandbox.Admission(group) if group is not None and "--unshare-net" in argv else None
    try:
        with tempfile.TemporaryFile() as err:
            res = proc.run(
                [*argv, *(admission.args() if admission else []), "--", true],
                timeout_s=PROBE_S,
                stderr=err,
                pre_exec=group.join if group is not None and admission is None else None,
                pass_fds=fds + (admission.fds if admission else ()),
                started=admission.started if admission else None,
            )
            if res.ok:
                return None
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
    finally:
        for fd in fds:
            os.close(fd)
        if admission is not None:
            admission.close()
        if group is not None:
            group.release()
    return lines[-1] if lines else res.start_error or f"exit code {res.returncode}"


def privilege_problem() -> str | None:
    """Why a host trial cannot be started without capabilities here, or None."""
    if "privilege" in _worked:
        return None
    # The smallest program there is: an interpreter's start-up would delay every run's first trial.
    true = shutil.which("true", path="/usr/bin:/bin")
    probe = [true] if true else [sys.executable, "-I", "-S", "-c", ""]
    argv, pre_exec = privilege.wrap(probe, dedicated=False)
    if proc.run(argv, timeout_s=PROBE_S, pre_exec=pre_exec).ok:
        _worked.add("privilege")
        return None
    return (
        "a trial on the host cannot be started without capabilities here (setpriv or "
        "prctl(PR_CAPBSET_DROP) failed): no trial runs"
    )
