"""The RCA use case over ports: load the run and its agent's version history, analyse, maybe enhance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from opslab.errors import NotFound
from opslab.rca.analyze import Progress, analyze_run
from opslab.rca.evidence import VersionStat
from opslab.rca.model import RcaReport
from opslab.telemetry import AgentRunIn

KIND = "rca"
STEPS = ("Starting RCA", "Collecting evidence", "Classifying failure", "Generating report")
DONE_STEP = "RCA complete"


class RunSource(Protocol):
    def load_run(self, run_id: str) -> AgentRunIn | None: ...
    def version_stats(self, agent_name: str) -> list[VersionStat]: ...


Enhancer = Callable[[AgentRunIn, RcaReport], RcaReport]


class RcaService:
    def __init__(self, runs: RunSource, *, enhancer: Enhancer | None = None) -> None:
        self.runs, self.enhancer = runs, enhancer

    def analyze(self, run_id: str, progress: Progress) -> RcaReport:
        progress(STEPS[0], 5)
        run = self.runs.load_run(run_id)
        if run is None:
            raise NotFound(f"no agent run {run_id!r}", details={"run_id": run_id})
        history = self.runs.version_stats(run.agent_name) if run.agent_version else []
        report = analyze_run(run, history=history, progress=progress)
        if self.enhancer is not None and not report.insufficient_evidence:
            report = self.enhancer(run, report)
        return report

    def handle(self, payload: dict[str, Any], progress: Progress) -> dict[str, Any]:
        """Job handler: payload ``{"run_id"}`` -> the report as JSON."""
        return self.analyze(str(payload["run_id"]), progress).model_dump(mode="json")
