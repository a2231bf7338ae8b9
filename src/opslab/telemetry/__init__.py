"""Agent-run telemetry: the wire contract, ingest (validate, redact, fingerprint), timeline, overview.

Every agent run, whether posted over HTTP, mapped from OpenTelemetry spans, imported from a
dataset or produced by a lab trial, becomes one ``AgentRunIn``.
"""

from opslab.telemetry.genai import map_trace
from opslab.telemetry.importers import FORMATS, Format, agent_name, import_runs
from opslab.telemetry.ingest import PreparedRun, check_semantics, parse_run, prepare_many, prepare_run
from opslab.telemetry.otlp import Span, decode_protobuf, encode_export_response, parse_request
from opslab.telemetry.ports import RunRepository, UpsertStatus
from opslab.telemetry.redact import Redactor
from opslab.telemetry.schema import (
    ID_PATTERN,
    MAX_YEAR,
    MIN_YEAR,
    NO_NUL,
    SCHEMA_VERSION,
    AgentRunIn,
    CostIn,
    GuardrailEventIn,
    Name,
    RunOrigin,
    RunStatus,
    StepIn,
    ToolCallIn,
    UtcDatetime,
)
from opslab.telemetry.service import MAX_HOURS, TelemetryService
from opslab.telemetry.timeline import build_timeline
from opslab.telemetry.views import (
    BatchItemResult,
    BatchResult,
    CostShare,
    FailingTool,
    FleetSeries,
    IngestResult,
    OtlpResult,
    Overview,
    RunCounts,
    RunFilter,
    RunPage,
    RunSummary,
    SeriesPoint,
    Timeline,
    TimelineItem,
    VersionStat,
)

__all__ = [
    "ID_PATTERN",
    "NO_NUL",
    "MAX_YEAR",
    "MIN_YEAR",
    "Name",
    "UtcDatetime",
    "MAX_HOURS",
    "SCHEMA_VERSION",
    "AgentRunIn",
    "BatchItemResult",
    "BatchResult",
    "CostIn",
    "CostShare",
    "FailingTool",
    "FleetSeries",
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
    "RunOrigin",
    "RunStatus",
    "RunSummary",
    "SeriesPoint",
    "Span",
    "StepIn",
    "TelemetryService",
    "Timeline",
    "TimelineItem",
    "ToolCallIn",
    "UpsertStatus",
    "VersionStat",
    "agent_name",
    "build_timeline",
    "check_semantics",
    "decode_protobuf",
    "encode_export_response",
    "import_runs",
    "FORMATS",
    "Format",
    "map_trace",
    "parse_request",
    "parse_run",
    "prepare_many",
    "prepare_run",
]
