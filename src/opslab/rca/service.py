"""The RCA use case over ports: load the run and its agent's version history, analyse, maybe enhance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from opslab.errors import NotFound
from opslab.rca.analyze import RcaProgress, analyze_run
from opslab.rca.model import RcaReport
from opslab.rca.scoring import Localizer
from opslab.rca.taxonomy import Taxonomy
from opslab.telemetry import AgentRunIn, VersionStat

STEPS = ("Starting RCA", "Collecting evidence", "Classifying failure", "Generating report")


class RunLoader(Protocol):
    """Where the RCA reads runs from (the telemetry store implements it)."""

    def load_run(self, run_id: str) -> AgentRunIn | None: ...
    def version_stats(self, agent_name: str) -> list[VersionStat]: ...


Enhancer = Callable[[AgentRunIn, RcaReport], RcaReport]


class RcaService:
    def __init__(
        self,
        runs: RunLoader,
        *,
        enhancer: Enhancer | None = None,
        model: Localizer | None = None,
        taxonomy: Taxonomy | None = None,
    ) -> None:
        self.runs, self.enhancer, self.model, self.taxonomy = runs, enhancer, model, taxonomy

    def analyze(self, run_id: str, progress: RcaProgress) -> RcaReport:
        progress(STEPS[0], 5)
        run = self.runs.load_run(run_id)
        if run is None:
            raise NotFound(f"no agent run {run_id!r}", details={"run_id": run_id})
        history = self.runs.version_stats(run.agent_name) if run.agent_version else []
        report = analyze_run(
            run, history=history, progress=progress, model=self.model, taxonomy=self.taxonomy
        )
        if self.enhancer is not None and not report.insufficient_evidence and report.outcome != "succeeded":
            report = self.enhancer(run, report)
        return report
