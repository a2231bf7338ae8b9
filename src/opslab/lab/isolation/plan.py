"""How each trial of a run is isolated, decided once per run and applied to every trial: the harness's
argv, working directory and environment as launched, and what it enters.

    network none               a private network namespace: its own loopback, nothing else
    network allowlist_enforced the same, plus the runner's egress proxy (allowed hosts only) on
                               127.0.0.1:3128 inside it (HTTP(S)_PROXY set)
    network full               the host's network
    sandbox local              network none / allowlist_enforced: the bubblewrap sandbox over the host's
                               system directories, read-only (``sandbox``); network full: a host process
                               without capabilities (``privilege``)
    sandbox rootfs             the bubblewrap sandbox over the image's root filesystem: the workspace at
                               /workspace, the trial's I/O at /out
    sandbox oci                podman or docker runs the image (``--network none`` / ``host``), without
                               capabilities

At ``otel`` and above, the runner's OpenTelemetry collector is reachable on 127.0.0.2:4318 inside a
private network (bridged to its Unix socket, outside the sandbox), and on its own TCP port on the host
network. A plan that cannot be established is refused before the first trial (``checks.preflight``); if
it fails for one trial anyway, that trial errors. Nothing ever runs with more than configured.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from opslab.errors import InvalidInput, Unavailable
from opslab.lab.isolation import engine as oci
from opslab.lab.isolation import limits, netns, pids, privilege, sandbox, zygote, zygote_build
from opslab.lab.isolation.image import ImageRef, SandboxKind, classify, rootfs_of
from opslab.lab.isolation.launch import Launch
from opslab.lab.isolation.limits import TrialLimits
from opslab.lab.isolation.sandbox import DEFAULT_PIDS_LIMIT

if TYPE_CHECKING:  # a type here: the sandbox's probes import this package before the experiment's models
    from opslab.lab.config import Resolved

PROXY_PORT = 3128
# The collector inside a private network: its own loopback address, so NO_PROXY can name it exactly
# (clients compare IP addresses in NO_PROXY by address alone, never with a port).
OTLP_HOST, OTLP_PORT = "127.0.0.2", 4318
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WORKSPACE, OUT, CONTROL = "/workspace", "/out", "/control.json"
OTEL_LEVELS = ("otel", "sdk_control", "sdk_full")
CONTROL_LEVELS = ("sdk_control", "sdk_full")
ENGINES = ("podman", "docker")
# The forwarding bridge, a script run by its path (not imported: its argparse is not the runner's to load).
BRIDGE = str(Path(__file__).with_name("bridge.py"))


@dataclass(frozen=True)
class RunServices:
    """What the runner serves its trials, by address: each is optional."""

    proxy_socket: str | None = None  # the egress proxy (allowlist_enforced)
    otlp_socket: str | None = None  # the OpenTelemetry collector, for private networks
    otlp_port: int | None = None  # the same collector on the host's loopback
    control_path: str | None = None  # the run's control file (sdk_control / sdk_full)
    control_dir: str | None = None  # a folder holding only a live copy of it, for sandboxes


@dataclass
class IsolationPlan:
    network: str  # none | allowlist_enforced | full
    allowed_hosts: list[str]
    sandbox: SandboxKind
    image: str | None
    integration_level: str
    rootfs: Path | None = None
    engine: str | None = None
    services: RunServices = field(default_factory=RunServices)
    pids_limit: int = DEFAULT_PIDS_LIMIT
    read_only: tuple[str, ...] = ()
    limits: TrialLimits = field(default_factory=TrialLimits)
    host_group: bool = False  # a host trial gets a cgroup (the experiment limits its pids or memory)
    # Sandboxed trials may start in a worker's zygote (``read_zygote_settings``).
    use_zygote: bool = False
    native_zygote: bool = True  # the zygote compiled from C where it can be (``lab_trial_zygote_native``)
    # The process that made the plan: a trial thread in another one is in a worker forked for this run.
    owner_pid: int = field(default_factory=os.getpid)
    _zygotes: zygote.Zygotes = field(default_factory=zygote.Zygotes, repr=False, compare=False)

    @property
    def private_network(self) -> bool:
        return self.network != "full"

    @property
    def zygote_capable(self) -> bool:
        """Its trials could start in zygotes (a local sandbox with a network of its own)."""
        return self.sandbox == "local" and self.private_network

    def read_zygote_settings(self) -> None:
        """``use_zygote`` and ``native_zygote`` as the settings say: read here, once, not by each worker
        thread of each forked worker."""
        enabled, native = _zygote_settings()
        self.use_zygote = self.zygote_capable and enabled
        self.native_zygote = native

    @property
    def sandboxed(self) -> bool:
        """The trial runs in the bubblewrap sandbox (``sandbox``)."""
        return self.sandbox == "rootfs" or (self.sandbox == "local" and self.private_network)

    def describe(self) -> dict[str, object]:
        """The isolation actually applied, for the manifest and the attestation."""
        return {
            "sandbox": "local" if self.sandbox == "local" else "container",
            "sandbox_backend": self.sandbox,
            "sandbox_mechanism": _sandbox_mechanism(self),
            "container_image": self.image,
            "rootfs": str(self.rootfs) if self.rootfs else None,
            "network_mode": self.network,
            "network_enforced": True,
            "network_mechanism": _network_mechanism(self),
            "allowed_hosts": list(self.allowed_hosts),
            "note": _note(self),
        }

    def launch(self, argv: list[str], *, ws: str, out_dir: str, env: dict[str, str], trial_id: str) -> Launch:
        """The harness ``argv`` (with ``{input}``/``{output}`` already placed by the caller against the
        paths ``seen_paths`` gave) wrapped for this plan."""
        env = dict(env)
        in_seen, out_seen = self.seen_paths(out_dir)
        forwards = self._services_env(env, trial_id)
        fds: tuple[int, ...] = ()
        pre_exec: Callable[[], None] | None = None
        release: Callable[[], None] | None = None
        admission: sandbox.Admission | None = None
        on_start: Callable[[int], None] | None = None
        if self.sandbox == "oci":
            assert self.engine and self.image
            argv, env = oci.argv(self.engine, self.image, argv, ws, out_dir, env, self._oci_options())
        elif self.sandboxed and (found := self._zygote(argv, ws, out_dir, env, forwards)) is not None:
            zyg, trial_mounts = found
            group = zyg.group  # the worker's: the zygote is in it, so each trial is born in it
            rlimits = self.limits.rlimits(memory_in_cgroup=group is not None and group.memory_limited)
            request = {
                "uid": os.getuid(),
                "gid": os.getgid(),
                "rlimits": rlimits,
                "mounts": [
                    *trial_mounts,
                    *(["tmpfs", path, "mode=755"] for path in zyg.covered),
                ],
                "cwd": ws,
                "argv": argv,
                "env": env,
            }
            # Born in the worker's cgroup, under limits the zygote sets: nothing to do with its pid before
            # it runs, so it is let go with its request.
            remote = functools.partial(zyg.start, request, go=True)
            return Launch(argv, ws, env, None, in_seen, out_seen, (), None, None, None, remote)
        elif self.sandboxed:
            base = pids.hierarchy() if self.pids_limit else None
            group = self._group(base)
            rlimits = self.limits.rlimits(memory_in_cgroup=group is not None and group.memory_limited)
            fds = (sandbox.seccomp_fd(),)
            # Without the bridge (no services to forward), bubblewrap makes the private network itself
            # and the pids group is joined through it: no pre_exec, so a vfork, not a fork, per trial.
            own_network = self.private_network and not forwards
            try:
                extra = ["--unshare-net"] if own_network else []
                if own_network and (group is not None or rlimits):
                    admission = sandbox.Admission(group, rlimits)
                    extra += admission.args()
                argv = self._sandboxed(argv, ws, out_dir, env, fds[0], extra)
            except BaseException:
                os.close(fds[0])
                if admission is not None:
                    admission.close()
                if group is not None:
                    group.release()
                raise
            release = group.release if group is not None else None
            if not own_network:  # the bridge enters the private network, then starts the sandbox
                pre_exec = sandbox.chain(
                    netns.enter_private_network if self.private_network else None,
                    group.join if group is not None else None,
                    functools.partial(limits.apply, 0, rlimits) if rlimits else None,
                )
        else:
            argv, pre_exec = privilege.wrap(argv, dedicated=os.getpid() != self.owner_pid)
            # With a pids or memory limit, a host process joins a group of its own as it starts (where the
            # runner may make one: root); the group also ends what it leaves running. Without one, the
            # runner's subreaper does that (``reaper``): moving a process between cgroups stalls every fork
            # on the machine for a moment, which a run of short trials pays for each trial.
            group = self._group(pids.hierarchy()) if self.host_group else None
            rlimits = self.limits.rlimits(memory_in_cgroup=group is not None and group.memory_limited)
            on_start = _Starter(group, rlimits) if group is not None or rlimits else None
            release = group.release if group is not None else None
        if forwards:
            argv = [
                sys.executable,
                "-I",
                "-S",
                BRIDGE,
                *(f"--forward={f}" for f in forwards),
                *(f"--pass-fd={fd}" for fd in fds),
                "--",
                *argv,
            ]
        return Launch(argv, ws, env, pre_exec, in_seen, out_seen, fds, release, admission, on_start)

    def close(self) -> None:
        """End the workers' zygotes (made again if a trial comes after)."""
        self._zygotes.close()

    def _zygote(
        self, argv: list[str], ws: str, out_dir: str, env: dict[str, str], forwards: list[str]
    ) -> tuple[zygote.Zygote, list[list[str]]] | None:
        """The worker's zygote for a local sandbox of its own network (``zygote``), or None: a sandbox
        per trial (an image, a run control file to mount, a zygote this machine cannot have, or
        ``OPSLAB_LAB_TRIAL_ZYGOTE=false``), with the trial's own mounts for it. The run's services
        (``forwards``: the egress proxy, the collector) are the same for every trial: the worker's
        bridge forwards them for all of its trials."""
        if not self.use_zygote or self.integration_level in CONTROL_LEVELS:  # use_zygote: local, own network
            return None
        python_path = os.pathsep.join(env.get(v, "") for v in ("PYTHONPATH", "VIRTUAL_ENV"))
        tmp = self.limits.tmp_bytes
        view = sandbox.host_view(argv[0], env.get("PATH", ""), python_path, self.read_only, tmp)
        mounts, outside = sandbox.zygote_mounts(ws=ws, out=out_dir, env=env, tmp_bytes=tmp)
        trials = os.path.dirname(os.path.dirname(ws))
        key = (view, trials, outside, tuple(forwards))
        bridge = (
            zygote.Bridge(
                (sys.executable, "-I", "-S", BRIDGE, *(f"--forward={f}" for f in forwards)),
                netns.enter_private_network,
            )
            if forwards
            else None
        )

        def args(program: zygote_build.Program) -> list[str]:  # made once per worker: not for each trial
            return [
                *sandbox.namespaces(),
                "--cap-add",
                "CAP_SETFCAP",  # so that the trial's own user namespace may map root: it drops it again
                *(() if bridge else ("--unshare-net",)),  # the bridge made the private network
                "--as-pid-1",
                *view,
                *(zygote.interpreter_view(view) if program.kind == "python" else ()),
                "--bind",
                trials,
                trials,
                *(arg for path in outside if not path.startswith("/tmp/") for arg in ("--dir", path)),
                # The sandbox's message queues, for the native zygote to list and remove what each trial
                # leaves: its trials then share the sandbox's IPC namespace (zygote.c).
                *(("--mqueue", "/dev/mqueue") if program.kind == "native" else ()),
                "--remount-ro",
                "/dev",
                "--remount-ro",
                "/",
                "--chdir",
                "/",
            ]

        # The worker's cgroup holds the zygote (one task) and one trial at a time.
        def group() -> pids.TrialGroup | None:
            base = pids.hierarchy() if self.pids_limit else None
            if base is None:
                return None
            return pids.TrialGroup(base, self.pids_limit + 1, memory_bytes=self.limits.memory_bytes)

        made = self._zygotes.for_thread(
            key, args, zygote.covered(view), group, native=self.native_zygote, bridge=bridge
        )
        return (made, mounts) if made is not None else None

    def _group(self, base: str | None) -> pids.TrialGroup | None:
        if base is None:
            return None
        return pids.TrialGroup(base, self.pids_limit, memory_bytes=self.limits.memory_bytes)

    def seen_paths(self, out_dir: str) -> tuple[str, str]:
        base = OUT if self.sandbox != "local" else out_dir
        return f"{base}/trial_input.json", f"{base}/trial_output.json"

    def _services_env(self, env: dict[str, str], trial_id: str) -> list[str]:
        """The runner's services in the harness's environment; the bridge's forwards they need."""
        forwards: list[str] = []
        if self.network == "allowlist_enforced":
            if not self.services.proxy_socket:
                raise Unavailable("allowlist_enforced needs the runner's egress proxy, which is not running")
            proxy = f"http://127.0.0.1:{PROXY_PORT}"
            env.update(
                HTTP_PROXY=proxy, HTTPS_PROXY=proxy, http_proxy=proxy, https_proxy=proxy, ALL_PROXY=proxy
            )
            forwards.append(f"{PROXY_PORT}={self.services.proxy_socket}")
        if self.integration_level in OTEL_LEVELS and (self.services.otlp_socket or self.services.otlp_port):
            endpoint = self._otlp_endpoint(trial_id, forwards)
            if endpoint:
                from opslab.lab.otel import otel_env  # the collector's side of the contract

                env.update(otel_env(endpoint))
                env.setdefault("OTEL_SERVICE_NAME", "opslab-harness")
                if "HTTP_PROXY" in env:  # the collector is not a host the proxy should see
                    env["NO_PROXY"] = env["no_proxy"] = OTLP_HOST
        if self.integration_level in CONTROL_LEVELS and self.services.control_path:
            env["OPSLAB_CONTROL_PATH"] = {
                "local": CONTROL if self.sandboxed else self.services.control_path,
                "rootfs": CONTROL,
                "oci": f"{oci.CONTROL_DIR}/control.json",
            }[self.sandbox]
        return forwards

    def _sandboxed(
        self, argv: list[str], ws: str, out_dir: str, env: dict[str, str], fd: int, extra: list[str]
    ) -> list[str]:
        control = self.services.control_dir if self.integration_level in CONTROL_LEVELS else None
        if self.sandbox == "rootfs":
            env.update(PATH=CONTAINER_PATH, HOME="/tmp", TMPDIR="/tmp")
            env["OPSLAB_EVENTS_PATH"] = f"{OUT}/harness_events.jsonl"
            view = self._image_view
            mounts = sandbox.trial_mounts(
                ws=ws, out=out_dir, env=env, control_dir=control, seen=(WORKSPACE, OUT)
            )
        else:
            program = argv[0] if os.sep in argv[0] else shutil.which(argv[0], path=env.get("PATH")) or argv[0]
            python_path = os.pathsep.join(env.get(v, "") for v in ("PYTHONPATH", "VIRTUAL_ENV"))
            view = sandbox.host_view(
                program, env.get("PATH", ""), python_path, self.read_only, self.limits.tmp_bytes
            )
            mounts = sandbox.trial_mounts(ws=ws, out=out_dir, env=env, control_dir=control)
        return [*sandbox.namespaces(), *extra, *view, *mounts, "--seccomp", str(fd), "--", *argv]

    def _otlp_endpoint(self, trial_id: str, forwards: list[str]) -> str | None:
        if self.private_network and self.sandbox != "oci":
            if not self.services.otlp_socket:
                return None
            forwards.append(f"{OTLP_HOST}:{OTLP_PORT}={self.services.otlp_socket}")
            return f"http://{OTLP_HOST}:{OTLP_PORT}/trials/{trial_id}"
        if self.services.otlp_port and (self.sandbox != "oci" or self.network == "full"):
            return f"http://127.0.0.1:{self.services.otlp_port}/trials/{trial_id}"
        return None

    @functools.cached_property
    def _image_view(self) -> tuple[str, ...]:
        """The image's mounts, read-only, and the kernel's view: the same for every trial."""
        assert self.rootfs is not None
        args = ["--tmpfs", "/"]
        for entry in sorted(os.scandir(self.rootfs), key=lambda e: e.name):
            if entry.name in ("proc", "dev", "tmp", "run", WORKSPACE[1:], OUT[1:]):
                continue
            if entry.is_symlink():
                args += ["--symlink", os.readlink(entry.path), f"/{entry.name}"]
            else:
                args += ["--ro-bind", entry.path, f"/{entry.name}"]
        args += [*sandbox.kernel_view(), *sandbox.private_tmp(self.limits.tmp_bytes), "--tmpfs", "/run"]
        if self.network == "full":  # the host's resolver, where the image has a file to mount it over
            for name in ("/etc/resolv.conf", "/etc/hosts"):
                if os.path.isfile(f"{self.rootfs}{name}") and not os.path.islink(f"{self.rootfs}{name}"):
                    args += ["--ro-bind-try", name, name]
        return tuple(args)

    def _oci_options(self) -> oci.Options:
        control = self.services.control_dir if self.integration_level in CONTROL_LEVELS else None
        return oci.Options(
            network=self.network, control_dir=control, pids_limit=self.pids_limit, limits=self.limits
        )


def plan_for(
    *,
    network: str,
    allowed_hosts: list[str],
    image: str | None,
    integration_level: str,
    project_root: Path,
    force_container: bool = False,
    pids_limit: int = DEFAULT_PIDS_LIMIT,
    read_only: tuple[str, ...] = (),
    limits: TrialLimits | None = None,
    host_group: bool = False,
    zygote_settings: bool = True,
) -> IsolationPlan:
    """The run's isolation plan from its config (``force_container``: ``--container``, ``run-dev`` and
    ``run-experiment``, which refuse to run without an image). ``zygote_settings`` false: the caller
    calls ``read_zygote_settings`` later (trials start in no zygote until then)."""
    ref: ImageRef = classify(image, project_root)
    if force_container and ref.kind == "local":
        raise InvalidInput.for_field(
            "runtime.sandbox.image",
            "this run needs a container: set an image (a root filesystem directory or tarball, or an "
            "image for podman/docker)",
        )
    plan = IsolationPlan(
        network,
        list(allowed_hosts),
        ref.kind,
        image,
        integration_level,
        pids_limit=pids_limit,
        read_only=read_only,
        limits=limits or TrialLimits(),
        host_group=host_group,
    )
    if zygote_settings:
        plan.read_zygote_settings()
    if ref.kind == "rootfs":
        plan.rootfs = rootfs_of(ref, project_root / ".lab" / "images")
    elif ref.kind == "oci":
        plan.engine = next((e for e in ENGINES if shutil.which(e)), None)
    return plan


def plan_of(
    resolved: Resolved, *, force_container: bool = False, zygote_settings: bool = True
) -> IsolationPlan:
    """``plan_for`` with an experiment's own runtime settings. The image is used only for a container run
    (``force_container``): as the seed says, ``run`` is local unless asked for ``--container``."""
    rt = resolved.config.runtime
    return plan_for(
        network=rt.network.mode,
        allowed_hosts=rt.network.allowed_hosts,
        image=rt.sandbox.image if force_container else None,
        integration_level=rt.harness.integration_level,
        project_root=resolved.project_root,
        force_container=force_container,
        pids_limit=rt.sandbox.pids_limit if rt.limits.pids is None else rt.limits.pids,
        read_only=tuple(rt.sandbox.read_only),
        limits=TrialLimits.of(rt.limits),
        host_group=rt.limits.pids is not None or rt.limits.memory_mb is not None,
        zygote_settings=zygote_settings,
    )


_ZYGOTE_SETTINGS = ("lab_trial_zygote", "lab_trial_zygote_native")


@functools.cache
def _zygote_settings() -> tuple[bool, bool]:
    """``lab_trial_zygote`` and ``lab_trial_zygote_native``, loaded once per process."""
    # Unset (no variable, no .env file: the usual case), they are the defaults, told without loading the
    # settings: importing pydantic-settings and building ``Settings`` costs a run ~0.2 s on a slow machine.
    from opslab import config_sources

    if not any(config_sources.may_be_set(f"OPSLAB_{name.upper()}") for name in _ZYGOTE_SETTINGS):
        return True, True
    from opslab.config import Settings

    settings = Settings.load()
    return settings.lab_trial_zygote, settings.lab_trial_zygote_native


class _Starter:
    """A host process's admission, from the runner as it starts: into its group, under its limits."""

    def __init__(self, group: pids.TrialGroup | None, rlimits: list[tuple[int, int]]) -> None:
        self.group, self.rlimits = group, rlimits

    def __call__(self, pid: int) -> None:
        if self.group is not None:
            self.group.admit(pid)
        limits.apply(pid, self.rlimits)


def _sandbox_mechanism(plan: IsolationPlan) -> str:
    if plan.sandbox == "oci":
        return f"{plan.engine or 'oci'} (no capabilities, no_new_privs, pids limit)"
    if not plan.sandboxed:
        return "host process (no capabilities, no_new_privs)"
    return "bubblewrap: user, mount, PID, IPC and UTS namespaces; no capabilities; seccomp" + (
        f"; at most {plan.pids_limit} tasks" if plan.pids_limit else "; no pids limit"
    )


def _network_mechanism(plan: IsolationPlan) -> str:
    if plan.network == "full":
        return "host network"
    if plan.sandbox == "oci":
        return f"{plan.engine} --network none"
    extra = " + egress proxy (allowed hosts only)" if plan.network == "allowlist_enforced" else ""
    return f"network namespace (loopback only){extra}"


def _note(plan: IsolationPlan) -> str:
    where = {
        "local": "trials run in a sandbox over the host's system directories (read-only)"
        if plan.sandboxed
        else "trials run as host processes without capabilities",
        "rootfs": f"trials run in bubblewrap over the root filesystem of {plan.image} (read-only)",
        "oci": f"trials run in {plan.engine or 'an OCI engine'} containers of {plan.image}",
    }[plan.sandbox]
    net = {
        "none": "no network (a private namespace with its own loopback)",
        "allowlist_enforced": f"network only to {', '.join(plan.allowed_hosts)} through the runner's proxy",
        "full": "full network",
    }[plan.network]
    return f"{where}, {net}"
