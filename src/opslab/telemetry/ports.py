"""What telemetry needs from storage: one Protocol, implemented by ``opslab.store``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from opslab.telemetry.ingest import PreparedRun
from opslab.telemetry.otlp import Span
from opslab.telemetry.schema import AgentRunIn, ScoreIn
from opslab.telemetry.signals import LogRecord
from opslab.telemetry.views import (
    FleetSeries,
    Overview,
    RunFilter,
    RunPage,
    RunSummary,
    ScoreView,
    VersionStat,
)

UpsertStatus = Literal["created", "updated"]


@dataclass
class TracePlan:
    """What an OTLP export changes: the spans to keep (``payloads``: each one's JSON text, as stored), and
    the runs its traces make now."""

    spans: list[Span] = field(default_factory=list)
    payloads: list[str] = field(default_factory=list)
    runs: list[PreparedRun] = field(default_factory=list)
    traces: set[str] = field(default_factory=set)


TracePlanner = Callable[[Mapping[str, list[Span]]], TracePlan]


class RunRepository(Protocol):
    one_writer: bool
    """The database takes one writer at a time (SQLite): ingests are then run one after another, since
    overlapping them gains nothing and makes their threads fight over the GIL."""

    def upsert_runs(self, runs: Sequence[PreparedRun]) -> dict[str, UpsertStatus]:
        """Write all runs in one transaction; a re-ingested run's children are replaced atomically."""
        ...

    def write_traces(self, trace_ids: Sequence[str], plan: TracePlanner) -> dict[str, UpsertStatus]:
        """In one transaction: read the stored spans of ``trace_ids`` (no other writer of those traces
        runs meanwhile), let ``plan`` decide, keep its spans, and make its runs the OTLP runs of its
        traces (a run the traces no longer make is removed)."""
        ...

    def get_summary(self, run_id: str) -> RunSummary | None: ...

    def load_run(self, run_id: str) -> AgentRunIn | None: ...

    def list_runs(self, flt: RunFilter, *, cursor: str | None, limit: int) -> RunPage: ...

    def overview(self, *, since: datetime, hours: int, top_tools: int = 5) -> Overview: ...

    def series(self, *, since: datetime, hours: int) -> FleetSeries:
        """Runs, successes and cost per hour (per day past two days), cost by model and by agent."""
        ...

    def trace_spans(self, trace_id: str) -> list[Span]: ...

    def add_logs(self, records: Sequence[LogRecord]) -> int: ...

    def trace_logs(self, trace_id: str, *, limit: int = 1000) -> list[LogRecord]: ...

    def add_score(self, run_id: str, score: ScoreIn) -> ScoreView | None:
        """Keep a score of ``run_id``; None when there is no such run."""
        ...

    def delete_runs(self, run_ids: Sequence[str]) -> list[str]:
        """Delete these runs with everything kept for them (steps, calls, events, tags, scores, RCA
        reports, and their trace's spans and logs once no other run holds it); the ids that existed."""
        ...

    def runs_started_before(self, before: datetime, *, limit: int) -> list[str]:
        """Up to ``limit`` ids of runs started before ``before``, oldest first."""
        ...

    def version_stats(self, agent_name: str) -> list[VersionStat]:
        """Runs and failures per version of ``agent_name``, in the order the versions first appeared."""
        ...
