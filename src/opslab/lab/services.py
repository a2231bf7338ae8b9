"""What the runner serves its trials while a run executes: the egress proxy (``allowlist_enforced``), the
OpenTelemetry collector (integration level ``otel`` and above) and the control file's path
(``sdk_control`` / ``sdk_full``). Started before the first trial, stopped after the last.

Their sockets live in the run's private folder (``RunScratch``), which no trial sees; entering the scope
also sweeps away the private folders of runners that died (kill -9 included). The egress proxy gets
the run's secrets, so the host names it logs are scrubbed of them; its log is scrubbed again on exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType

from opslab.lab.config import Resolved
from opslab.lab.control import mirror_control
from opslab.lab.isolation import EgressProxy, IsolationPlan, RunScratch, RunServices, sweep, sweep_groups
from opslab.lab.isolation.plan import CONTROL_LEVELS, OTEL_LEVELS
from opslab.lab.secrets import scrubber, secret_values

EGRESS_LOG = "egress.jsonl"


class RunServicesScope:
    """``with RunServicesScope(resolved, run_dir, plan, env=env_base) as plan_with_services: …``
    (``env``: the environment trials start from, where the secrets of ``runtime.env_allow`` are)."""

    def __init__(
        self, resolved: Resolved, run_dir: Path, plan: IsolationPlan, *, env: Mapping[str, str] | None = None
    ) -> None:
        self.resolved, self.run_dir, self.plan = resolved, run_dir, plan
        self.secrets = secret_values(resolved.config.runtime.env_allow, env or {})
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> IsolationPlan:
        sweep()
        sweep_groups()
        level = self.resolved.config.runtime.harness.integration_level
        services = RunServices()
        try:
            scratch: RunScratch | None = None
            if self.plan.network == "allowlist_enforced" or level in OTEL_LEVELS:
                scratch = self._stack.enter_context(RunScratch())
            if self.plan.network == "allowlist_enforced":
                assert scratch is not None
                self._stack.callback(self._scrub_logs)
                proxy = self._stack.enter_context(
                    EgressProxy(
                        self.plan.allowed_hosts,
                        self.run_dir / EGRESS_LOG,
                        scratch.file("proxy.sock"),
                        self.secrets,
                    )
                )
                services = replace(services, proxy_socket=proxy.socket_path)
            if level in OTEL_LEVELS:
                assert scratch is not None
                services = self._start_collector(services, scratch)
            if level in CONTROL_LEVELS:
                control_dir = mirror_control(self.run_dir)
                services = replace(
                    services, control_path=str(self.run_dir / "control.json"), control_dir=str(control_dir)
                )
        except BaseException:
            self._stack.close()
            raise
        return replace(self.plan, services=services)

    def _start_collector(self, services: RunServices, scratch: RunScratch) -> RunServices:
        from opslab.lab.otel import OtlpCollector

        collector = OtlpCollector.start(self.run_dir, socket_dir=scratch.path)
        self._stack.callback(collector.close)
        return replace(services, otlp_socket=collector.unix_socket, otlp_port=collector.tcp_port)

    def _scrub_logs(self) -> None:
        scrub = scrubber(self.secrets)
        for name in (EGRESS_LOG, Path(EGRESS_LOG).with_suffix(".stderr").name):
            scrub.file(self.run_dir / name)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()
