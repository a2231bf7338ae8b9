"""How each trial of a run is isolated, decided once per run and applied to every trial: the harness's
argv, working directory and environment as launched, and the namespace it enters.

    network none               a private network namespace: its own loopback, nothing else
    network allowlist_enforced the same, plus the runner's egress proxy (allowed hosts only) on
                               127.0.0.1:3128 inside it (HTTP(S)_PROXY set)
    network full               the host's network
    sandbox local              the trial's workspace on the host
    sandbox rootfs             bubblewrap over the image's root filesystem: the workspace at /workspace,
                               the trial's I/O at /out, its own PID/IPC/UTS namespaces
    sandbox oci                podman or docker runs the image (``--network none`` / ``host``)

At ``otel`` and above, the runner's OpenTelemetry collector is reachable on 127.0.0.2:4318 inside a
private network (bridged to its Unix socket), and on its own TCP port on the host network. A plan that
cannot be established is refused before the first trial (``preflight``); if it fails for one trial
anyway, that trial errors. Nothing ever runs with more network than configured.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from opslab import proc
from opslab.errors import InvalidInput, PolicyViolation, Unavailable
from opslab.lab.config import Resolved
from opslab.lab.isolation import bridge, netns
from opslab.lab.isolation.image import ImageRef, SandboxKind, classify, rootfs_of

PROXY_PORT = 3128
# The collector inside a private network: its own loopback address, so NO_PROXY can name it exactly
# (clients compare IP addresses in NO_PROXY by address alone, never with a port).
OTLP_HOST, OTLP_PORT = "127.0.0.2", 4318
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WORKSPACE, OUT, CONTROL = "/workspace", "/out", "/control.json"
OTEL_LEVELS = ("otel", "sdk_control", "sdk_full")
CONTROL_LEVELS = ("sdk_control", "sdk_full")
ENGINES = ("podman", "docker")
ENGINE_PROBE_S = 20.0
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY")


@dataclass(frozen=True)
class RunServices:
    """What the runner serves its trials, by address: each is optional."""

    proxy_socket: str | None = None  # the egress proxy (allowlist_enforced)
    otlp_socket: str | None = None  # the OpenTelemetry collector, for private networks
    otlp_port: int | None = None  # the same collector on the host's loopback
    control_path: str | None = None  # the run's control file (sdk_control / sdk_full)


@dataclass(frozen=True)
class Launch:
    """One trial's harness as launched."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    pre_exec: Callable[[], None] | None
    input_path: str  # as the harness sees them
    output_path: str


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

    @property
    def private_network(self) -> bool:
        return self.network != "full"

    def describe(self) -> dict[str, object]:
        """The isolation actually applied, for the manifest and the attestation."""
        backend = {"local": "host process", "rootfs": "bubblewrap", "oci": self.engine or "oci"}[self.sandbox]
        return {
            "sandbox": "local" if self.sandbox == "local" else "container",
            "sandbox_backend": self.sandbox,
            "sandbox_mechanism": backend,
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
            env["OPSLAB_CONTROL_PATH"] = CONTROL if self.sandbox != "local" else self.services.control_path
        cwd = ws
        if self.sandbox == "rootfs":
            env.update(PATH=CONTAINER_PATH, HOME="/tmp", TMPDIR="/tmp")
            env["OPSLAB_EVENTS_PATH"] = f"{OUT}/harness_events.jsonl"
            argv = [*self._bwrap(ws, out_dir), "--", *argv]
        elif self.sandbox == "oci":
            env["OPSLAB_EVENTS_PATH"] = f"{OUT}/harness_events.jsonl"
            argv, env = self._engine(argv, ws, out_dir, env)
        if forwards:
            argv = [
                sys.executable,
                "-I",
                "-S",
                bridge.__file__,
                *(f"--forward={f}" for f in forwards),
                "--",
                *argv,
            ]
        pre_exec = netns.enter_private_network if self.private_network and self.sandbox != "oci" else None
        return Launch(argv, cwd, env, pre_exec, in_seen, out_seen)

    def seen_paths(self, out_dir: str) -> tuple[str, str]:
        base = OUT if self.sandbox != "local" else out_dir
        return f"{base}/trial_input.json", f"{base}/trial_output.json"

    def _otlp_endpoint(self, trial_id: str, forwards: list[str]) -> str | None:
        if self.private_network and self.sandbox != "oci":
            if not self.services.otlp_socket:
                return None
            forwards.append(f"{OTLP_HOST}:{OTLP_PORT}={self.services.otlp_socket}")
            return f"http://{OTLP_HOST}:{OTLP_PORT}/trials/{trial_id}"
        if self.services.otlp_port and (self.sandbox != "oci" or self.network == "full"):
            return f"http://127.0.0.1:{self.services.otlp_port}/trials/{trial_id}"
        return None

    def _bwrap(self, ws: str, out_dir: str) -> list[str]:
        args = [*self._image_mounts]
        args += ["--bind", ws, WORKSPACE, "--bind", out_dir, OUT, "--chdir", WORKSPACE]
        if self.integration_level in CONTROL_LEVELS and self.services.control_path:
            args += ["--ro-bind-try", self.services.control_path, CONTROL]
        return args

    @functools.cached_property
    def _image_mounts(self) -> tuple[str, ...]:
        """bubblewrap's namespaces and the image's mounts: the same for every trial, read once per run."""
        assert self.rootfs is not None
        args = ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        args += ["--unshare-cgroup-try", "--tmpfs", "/"]
        for entry in sorted(os.scandir(self.rootfs), key=lambda e: e.name):
            if entry.name in ("proc", "dev", "tmp", WORKSPACE[1:], OUT[1:]):
                continue
            if entry.is_symlink():
                args += ["--symlink", os.readlink(entry.path), f"/{entry.name}"]
            else:
                args += ["--ro-bind", entry.path, f"/{entry.name}"]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        if self.network == "full":  # the host's resolver, where the image has a file to mount it over
            for name in ("/etc/resolv.conf", "/etc/hosts"):
                if os.path.isfile(f"{self.rootfs}{name}") and not os.path.islink(f"{self.rootfs}{name}"):
                    args += ["--ro-bind-try", name, name]
        return tuple(args)

    def _engine(
        self, argv: list[str], ws: str, out_dir: str, env: dict[str, str]
    ) -> tuple[list[str], dict[str, str]]:
        assert self.engine and self.image
        network = "none" if self.network == "none" else "host"
        args = [self.engine, "run", "--rm", "--network", network, "--workdir", WORKSPACE]
        args += ["-v", f"{ws}:{WORKSPACE}", "-v", f"{out_dir}:{OUT}"]
        if self.integration_level in CONTROL_LEVELS and self.services.control_path:
            args += ["-v", f"{self.services.control_path}:{CONTROL}:ro"]
        passed = {k: v for k, v in env.items() if k not in ("PATH", "HOME", "TMPDIR")}
        for name in sorted(passed):
            args += ["-e", name]  # the value travels in the engine's environment, never on a command line
        host_env = {"PATH": env.get("PATH", os.defpath), **passed}
        return [*args, self.image, *argv], host_env


def plan_for(
    *,
    network: str,
    allowed_hosts: list[str],
    image: str | None,
    integration_level: str,
    project_root: Path,
    force_container: bool = False,
) -> IsolationPlan:
    """The run's isolation plan from its config (``force_container``: ``--container``, ``run-dev`` and
    ``run-experiment``, which refuse to run without an image)."""
    ref: ImageRef = classify(image, project_root)
    if force_container and ref.kind == "local":
        raise InvalidInput.for_field(
            "runtime.sandbox.image",
            "this run needs a container: set an image (a root filesystem directory or tarball, or an "
            "image for podman/docker)",
        )
    plan = IsolationPlan(network, list(allowed_hosts), ref.kind, image, integration_level)
    if ref.kind == "rootfs":
        plan.rootfs = rootfs_of(ref, project_root / ".lab" / "images")
    elif ref.kind == "oci":
        plan.engine = next((e for e in ENGINES if shutil.which(e)), None)
    return plan


def plan_of(resolved: Resolved, *, force_container: bool = False) -> IsolationPlan:
    """``plan_for`` with an experiment's own runtime settings."""
    rt = resolved.config.runtime
    return plan_for(
        network=rt.network.mode,
        allowed_hosts=rt.network.allowed_hosts,
        image=rt.sandbox.image,
        integration_level=rt.harness.integration_level,
        project_root=resolved.project_root,
        force_container=force_container,
    )


def preflight(plan: IsolationPlan) -> None:
    """Refuse, before the first trial, a plan this machine cannot establish."""
    if plan.network == "allowlist_enforced" and not plan.allowed_hosts:
        raise InvalidInput.for_field(
            "runtime.network.allowed_hosts", "allowlist_enforced needs at least one host (or use none)"
        )
    if plan.sandbox == "rootfs" and not shutil.which("bwrap"):
        raise Unavailable(
            "the daemonless container backend needs bubblewrap: install it (apt-get install bubblewrap)",
            details={"field": "runtime.sandbox.image"},
        )
    if plan.sandbox == "oci":
        if plan.engine is not None:
            probe = proc.run([plan.engine, "info"], timeout_s=ENGINE_PROBE_S)
            if not probe.ok:
                raise Unavailable(
                    f"{plan.engine} is installed but cannot run containers (`{plan.engine} info` failed); "
                    "give a root filesystem (a directory or an exported tarball) for the daemonless backend",
                    details={"field": "runtime.sandbox.image", "engine": plan.engine},
                )
        if plan.engine is None:
            raise Unavailable(
                f"image {plan.image!r} needs podman or docker, and neither is installed; or give a root "
                "filesystem (a directory or an exported tarball) for the daemonless backend",
                details={"field": "runtime.sandbox.image"},
            )
        if plan.network == "allowlist_enforced":
            raise PolicyViolation(
                "allowlist_enforced is enforced by the daemonless backend only; with an OCI engine use "
                "none or full, or give a root filesystem",
                details={"field": "runtime.network.mode"},
            )
    if plan.private_network and plan.sandbox != "oci":
        problem = netns.probe()
        if problem:
            raise Unavailable(problem, details={"field": "runtime.network.mode", "mode": plan.network})


def _network_mechanism(plan: IsolationPlan) -> str:
    if plan.network == "full":
        return "host network"
    if plan.sandbox == "oci":
        return f"{plan.engine} --network none"
    extra = " + egress proxy (allowed hosts only)" if plan.network == "allowlist_enforced" else ""
    return f"network namespace (loopback only){extra}"


def _note(plan: IsolationPlan) -> str:
    where = {
        "local": "trials run as local processes",
        "rootfs": f"trials run in bubblewrap over the root filesystem of {plan.image}",
        "oci": f"trials run in {plan.engine or 'an OCI engine'} containers of {plan.image}",
    }[plan.sandbox]
    net = {
        "none": "no network (a private namespace with its own loopback)",
        "allowlist_enforced": f"network only to {', '.join(plan.allowed_hosts)} through the runner's proxy",
        "full": "full network",
    }[plan.network]
    return f"{where}, {net}"
