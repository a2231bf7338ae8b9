"""Agent-run telemetry: the wire contract, ingest (validate, redact, fingerprint), timeline, overview.

Every agent run, whether posted over HTTP, mapped from OpenTelemetry spans, imported from a
dataset or produced by a lab trial, becomes one ``AgentRunIn``.
"""

from opslab.telemetry.ingest import PreparedRun, parse_run, prepare_many, prepare_run
from opslab.telemetry.ports import RunRepository, UpsertStatus
from opslab.telemetry.redact import Redactor
from opslab.telemetry.schema import (
    SCHEMA_VERSION,
    AgentRunIn,
    CostIn,
    GuardrailEventIn,
    RunSource,
    RunStatus,
    StepIn,
    ToolCallIn,
)
from opslab.telemetry.service import TelemetryService
from opslab.telemetry.timeline import build_timeline
from opslab.telemetry.views import (
    BatchItemResult,
    BatchResult,
    FailingTool,
    IngestResult,
    OtlpResult,
    Overview,
    RunCounts,
    RunFilter,
    RunPage,
    RunSummary,
    Timeline,
    TimelineItem,
)

__all__ = [
    "SCHEMA_VERSION",
    "AgentRunIn",
    "BatchItemResult",
    "BatchResult",
    "CostIn",
    "FailingTool",
    "GuardrailEventIn",
    "IngestResult",
    "OtlpResult",
    "Overview",
    "PreparedRun",
    "Redactor",
    "RunCounts",
    "RunFilter",
    "RunPage",
    "RunRepository",
    "RunSource",
    "RunStatus",
    "RunSummary",
    "StepIn",
    "TelemetryService",
    "Timeline",
    "TimelineItem",
    "ToolCallIn",
    "UpsertStatus",
    "build_timeline",
    "parse_run",
    "prepare_many",
    "prepare_run",
]
