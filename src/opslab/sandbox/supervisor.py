"""The supervisor of one sandbox world (``opslab sandbox up``, or ``World.start`` from Python).

The target and the dependency run as children (``opslab.proc.spawn``), each ready once its ``/healthz``
answers; the chaos and action servers run in this process, on threads. Nothing restarts a child by
itself: only ``restart`` (the action server's ``Processes``) does, so an outage lasts until someone acts.

Children are spawned from one long-lived thread of their own: Linux ties a child's death-with-parent
signal to the *thread* that forked it, and an action server's worker thread may end at any time.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Literal

import httpx
from pydantic import BaseModel, Field

from opslab import proc
from opslab.errors import InvalidInput, NotFound, Unavailable
from opslab.sandbox.actions import create_action_app
from opslab.sandbox.chaos import create_chaos_app
from opslab.sandbox.files import Endpoints, SandboxFiles, ensure_token
from opslab.sandbox.guard import check_bind
from opslab.sandbox.hoststat import CpuMeter, HostStats, ProcessStats
from opslab.serving import ServerThread, free_port

Part = Literal["target", "dependency", "chaos", "actions"]
PARTS: tuple[Part, ...] = ("target", "dependency", "chaos", "actions")
CHILDREN: tuple[Part, ...] = ("target", "dependency")


@dataclass(frozen=True)
class WorldPorts:
    """The ports of a world's parts; 0 means a free port picked at start."""

    target: int = 8100
    dependency: int = 8101
    chaos: int = 8180
    actions: int = 8190

    def of(self, part: Part) -> int:
        port: int = getattr(self, part)
        return port


class TargetOptions(BaseModel):
    """How the supervisor starts the target (``opslab sandbox target`` options)."""

    seed: int = 42
    base_median_ms: float = Field(default=20.0, gt=0)
    sigma: float = Field(default=0.35, gt=0)
    traffic_rps: float = Field(default=20.0, ge=0)
    window_s: float = Field(default=5.0, gt=0)
    memory_headroom_mb: float = Field(default=150.0, gt=0)
    dependency_url: str | None = Field(
        default=None,
        description="Where the target calls its dependency; default the world's own (a test puts a proxy "
        "between them to add latency on the network path).",
    )


def parse_parts(only: str | Iterable[str]) -> tuple[Part, ...]:
    """``"target,dependency"`` (or a list) as parts in start order; an unknown one names ``--only``."""
    names = [n.strip() for n in (only.split(",") if isinstance(only, str) else only) if n.strip()]
    unknown = [n for n in names if n not in PARTS]
    if unknown or not names:
        raise InvalidInput.for_field(
            "--only", f"choose among {', '.join(PARTS)} (got {', '.join(unknown) or 'none'})"
        )
    return tuple(p for p in PARTS if p in names)


class World:
    """One sandbox world. ``with World.start(data_dir, ports=WorldPorts(0, 0, 0, 0)) as world: …``"""

    def __init__(
        self,
        data_dir: Path,
        *,
        ports: WorldPorts,
        only: tuple[Part, ...],
        host: str,
        target: TargetOptions,
        ready_timeout_s: float,
    ) -> None:
        self.files = SandboxFiles.under(data_dir)
        self.host, self.parts, self.target_options, self.ready_timeout_s = host, only, target, ready_timeout_s
        self.ports = replace(ports, **{p: free_port(host) for p in PARTS if ports.of(p) == 0})
        self.children: dict[str, proc.Child] = {}
        self.services: dict[Part, ServerThread] = {}
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-spawner")
        self._restarting = threading.Lock()
        self._cpu = CpuMeter()

    @classmethod
    def start(
        cls,
        data_dir: Path,
        *,
        ports: WorldPorts | None = None,
        only: str | Iterable[str] = PARTS,
        host: str = "127.0.0.1",
        target: TargetOptions | None = None,
        ready_timeout_s: float = 30.0,
        fresh: bool = True,
    ) -> World:
        """Start the parts ``only`` names; ``fresh`` forgets the last world's deployed version and flags."""
        world = cls(
            data_dir,
            ports=ports or WorldPorts(),
            only=parse_parts(only),
            host=host,
            target=target or TargetOptions(),
            ready_timeout_s=ready_timeout_s,
        )
        try:
            world._start(fresh=fresh)
        except BaseException:
            world.stop()
            raise
        return world

    def url(self, part: Part) -> str:
        return f"http://{self.host}:{self.ports.of(part)}"

    @property
    def sandbox_token(self) -> str:
        return ensure_token(self.files.sandbox_token)

    @property
    def action_token(self) -> str:
        return ensure_token(self.files.action_token)

    @property
    def chaos_token(self) -> str:
        return ensure_token(self.files.chaos_token)

    def pid(self, name: Part) -> int:
        return self._child(name).pid

    def _start(self, *, fresh: bool) -> None:
        self.files.prepare()
        sandbox_token, action_token, chaos_token = (
            ensure_token(self.files.sandbox_token),
            ensure_token(self.files.action_token),
            ensure_token(self.files.chaos_token),
        )
        check_bind(self.host, {"chaos server": chaos_token, "action server": action_token})
        if fresh:
            for name in ("deploy.json", "flags.json"):
                (self.files.target_dir / name).unlink(missing_ok=True)
        for part in CHILDREN:
            if part in self.parts:
                self.children[part] = self._spawner.submit(self._spawn, part).result()
        for part in CHILDREN:
            if part in self.children:
                self._wait_ready(part, self.children[part])
        if "chaos" in self.parts:
            app = create_chaos_app(
                target_url=self.url("target"),
                dependency_url=self.url("dependency"),
                token=sandbox_token,
                chaos_token=chaos_token,
            )
            self.services["chaos"] = ServerThread(
                app, name="chaos", host=self.host, port=self.ports.chaos
            ).start()
        if "actions" in self.parts:
            app = create_action_app(
                target_url=self.url("target"),
                sandbox_token=sandbox_token,
                action_token=action_token,
                audit_path=self.files.audit,
                processes=self,
            )
            self.services["actions"] = ServerThread(
                app, name="actions", host=self.host, port=self.ports.actions
            ).start()
        self.files.write_endpoints(
            Endpoints(
                target=self.url("target") if "target" in self.parts else None,
                actions=self.url("actions") if "actions" in self.parts else None,
            )
        )

    def _argv(self, part: Part) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "opslab",
            "sandbox",
            part,
            "--host",
            self.host,
            "--port",
            str(self.ports.of(part)),
        ]
        argv += ["--token-file", str(self.files.sandbox_token)]
        t = self.target_options
        if part == "target":
            dependency = t.dependency_url or self.url("dependency")
            # --pricing-url, the same option as --dependency-url: a search of the process table for
            # "dependency" finds the dependency's process, not the target that calls it.
            argv += ["--state-dir", str(self.files.target_dir), "--pricing-url", dependency]
            argv += [
                "--seed",
                str(t.seed),
                "--base-median-ms",
                str(t.base_median_ms),
                "--sigma",
                str(t.sigma),
            ]
            argv += ["--traffic-rps", str(t.traffic_rps), "--window-s", str(t.window_s)]
            argv += ["--memory-headroom-mb", str(t.memory_headroom_mb)]
        return argv

    def _spawn(self, part: Part) -> proc.Child:
        log = self.files.log(part)
        return proc.spawn(self._argv(part), stdout=log, stderr=log)

    def _wait_ready(self, part: Part, child: proc.Child) -> None:
        url, log = f"{self.url(part)}/healthz", self.files.log(part)
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if not child.alive:
                tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
                raise Unavailable(
                    f"the sandbox {part} exited with code {child.returncode} before answering; "
                    f"see {log}\n{tail}",
                    details={"part": part, "log": str(log)},
                )
            try:
                answer = httpx.get(url, timeout=0.5)
            except httpx.HTTPError:
                answer = None
            # Another server may hold the port and answer: our child then cannot bind, and exits (above).
            if answer is not None and answer.status_code == 200 and _answered_by(answer, child.pid):
                return
            time.sleep(0.05)
        raise Unavailable(
            f"the sandbox {part} did not answer {url} within {self.ready_timeout_s:g} s; see {log}",
            details={"part": part, "log": str(log)},
        )

    def _child(self, name: str) -> proc.Child:
        child = self.children.get(name)
        if child is None:
            raise NotFound(f"name: {name!r} is not a process of this world ({', '.join(self.children)})")
        return child

    def restart(self, name: str) -> str:
        """Stop the child ``name`` (``target`` or ``dependency``), start it again, wait until it answers."""
        old = self._child(name)
        part: Part = "target" if name == "target" else "dependency"
        with self._restarting:
            # A stopped process (SIGSTOP) cannot act on SIGTERM: no grace to wait out, it is killed.
            stopped = self._cpu.process(old.pid, exited=not old.alive).state == "stopped"
            old.stop(grace_s=0.2 if stopped else 5.0)
            child = self._spawner.submit(self._spawn, part).result()
            self.children[part] = child
            self._wait_ready(part, child)
        return f"{name} restarted: pid {old.pid} -> {child.pid}, answering on {self.url(part)}"

    def liveness(self, name: str) -> ProcessStats:
        """Is the child ``name`` alive, and in what state (``stopped``: SIGSTOP; ``gone``: it exited)?"""
        child = self._child(name)
        return self._cpu.process(child.pid, exited=not child.alive)

    def host_stats(self) -> HostStats:
        return self._cpu.host()

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()
        self.services.clear()
        for child in self.children.values():
            child.stop(grace_s=5.0)
        self.children.clear()
        self._spawner.shutdown(wait=True)

    def __enter__(self) -> World:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _answered_by(answer: httpx.Response, pid: int) -> bool:
    """Whether a ``/healthz`` answer comes from the process ``pid`` (and not another server on the port)."""
    try:
        body = answer.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("pid") == pid
