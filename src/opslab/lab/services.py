"""What the runner serves its trials while a run executes: the egress proxy (``allowlist_enforced``), the
OpenTelemetry collector (integration level ``otel`` and above) and the control file's path
(``sdk_control`` / ``sdk_full``). Started before the first trial, stopped after the last."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path
from types import TracebackType

from opslab.lab.config import Resolved
from opslab.lab.isolation import EgressProxy, IsolationPlan, RunServices
from opslab.lab.isolation.plan import CONTROL_LEVELS, OTEL_LEVELS


class RunServicesScope:
    """``with RunServicesScope(resolved, run_dir, plan) as plan_with_services: …``"""

    def __init__(self, resolved: Resolved, run_dir: Path, plan: IsolationPlan) -> None:
        self.resolved, self.run_dir, self.plan = resolved, run_dir, plan
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> IsolationPlan:
        level = self.resolved.config.runtime.harness.integration_level
        services = RunServices()
        try:
            if self.plan.network == "allowlist_enforced":
                proxy = self._stack.enter_context(
                    EgressProxy(self.plan.allowed_hosts, self.run_dir / "egress.jsonl")
                )
                services = replace(services, proxy_socket=proxy.socket_path)
            if level in OTEL_LEVELS:
                services = self._start_collector(services)
            if level in CONTROL_LEVELS:
                services = replace(services, control_path=str(self.run_dir / "control.json"))
        except BaseException:
            self._stack.close()
            raise
        return replace(self.plan, services=services)

    def _start_collector(self, services: RunServices) -> RunServices:
        from opslab.lab.otel import OtlpCollector

        collector = OtlpCollector.start(self.run_dir)
        self._stack.callback(collector.close)
        return replace(services, otlp_socket=collector.unix_socket, otlp_port=collector.tcp_port)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()
