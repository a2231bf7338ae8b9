"""What telemetry needs from storage: one Protocol, implemented by ``opslab.store``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, Protocol

from opslab.telemetry.ingest import PreparedRun
from opslab.telemetry.otlp import Span
from opslab.telemetry.schema import AgentRunIn
from opslab.telemetry.views import FleetSeries, Overview, RunFilter, RunPage, RunSummary, VersionStat

UpsertStatus = Literal["created", "updated"]


class RunRepository(Protocol):
    def upsert_runs(self, runs: Sequence[PreparedRun]) -> dict[str, UpsertStatus]:
        """Write all runs in one transaction; a re-ingested run's children are replaced atomically."""
        ...

    def get_summary(self, run_id: str) -> RunSummary | None: ...

    def load_run(self, run_id: str) -> AgentRunIn | None: ...

    def list_runs(self, flt: RunFilter, *, cursor: str | None, limit: int) -> RunPage: ...

    def overview(self, *, since: datetime, hours: int, top_tools: int = 5) -> Overview: ...

    def series(self, *, since: datetime, hours: int) -> FleetSeries:
        """Runs, successes and cost per hour (per day past two days), cost by model and by agent."""
        ...

    def add_spans(self, spans: Sequence[Span]) -> set[str]:
        """Keep OTLP spans (a re-sent span replaces the earlier copy); return the trace ids touched."""
        ...

    def trace_spans(self, trace_id: str) -> list[Span]: ...

    def version_stats(self, agent_name: str) -> list[VersionStat]:
        """Runs and failures per version of ``agent_name``, in the order the versions first appeared."""
        ...
