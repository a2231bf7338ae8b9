"""The other OTLP signals: log records (kept when they name a trace) and metrics (counted, not kept).

SDKs that export every signal post ``/v1/logs`` and ``/v1/metrics`` beside ``/v1/traces``; both are
accepted so their exporters stay quiet. A log record carrying a trace id becomes a timeline event of that
trace's runs; one without is dropped. Metric data points are counted and dropped: fleet metrics come from
the runs themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opslab.errors import InvalidInput
from opslab.telemetry.otlp import array_of, decode_attributes, decode_value, hex_ids, message_dict
from opslab.telemetry.schema import unstorable

BODY_CHARS = 4000
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class LogRecord:
    trace_id: str
    span_id: str | None
    at: datetime | None
    severity: str
    body: str
    attributes: dict[str, Any]


def parse_logs(body: Any) -> tuple[list[LogRecord], int]:
    """An ``ExportLogsServiceRequest`` (JSON mapping) -> the records that name a trace, and how many did not
    (or could not be read)."""
    if not isinstance(body, dict):
        raise InvalidInput.for_field("body", "expected an ExportLogsServiceRequest JSON object")
    kept: list[LogRecord] = []
    dropped = 0
    try:
        for rl in array_of(body.get("resourceLogs")):
            for sl in array_of(rl.get("scopeLogs") or rl.get("instrumentationLibraryLogs")):
                for rec in array_of(sl.get("logRecords")):
                    record = _record(rec)
                    if record is None:
                        dropped += 1
                    else:
                        kept.append(record)
    except (AttributeError, TypeError, ValueError, KeyError, RecursionError) as exc:
        raise InvalidInput.for_field("resourceLogs", f"malformed OTLP log data: {str(exc)[:200]}") from None
    return kept, dropped


def _record(rec: dict[str, Any]) -> LogRecord | None:
    trace_id = str(rec.get("traceId") or "").lower()
    if not trace_id or len(trace_id) > 64 or not set(trace_id) <= _HEX or set(trace_id) == {"0"}:
        return None
    span_id = str(rec.get("spanId") or "").lower() or None
    if span_id and (len(span_id) > 64 or not set(span_id) <= _HEX):
        span_id = None
    nanos = int(rec.get("timeUnixNano") or rec.get("observedTimeUnixNano") or 0)
    try:
        at = datetime.fromtimestamp(nanos / 1e9, UTC) if nanos else None
        if at is not None and not 1970 <= at.year <= 9999:
            at = None
    except (OverflowError, ValueError, OSError):
        at = None
    value = decode_value(rec.get("body") or {})
    text = value if isinstance(value, str) else "" if value is None else str(value)
    attributes = decode_attributes(rec.get("attributes") or [])
    if unstorable(attributes) or "\x00" in text:
        return None
    severity = str(rec.get("severityText") or rec.get("severityNumber") or "INFO")[:40]
    return LogRecord(trace_id, span_id, at, severity, text[:BODY_CHARS], attributes)


def count_metric_points(body: Any) -> int:
    """How many data points an ``ExportMetricsServiceRequest`` (JSON mapping) holds."""
    if not isinstance(body, dict):
        raise InvalidInput.for_field("body", "expected an ExportMetricsServiceRequest JSON object")
    points = 0
    try:
        for rm in array_of(body.get("resourceMetrics")):
            for sm in array_of(rm.get("scopeMetrics") or rm.get("instrumentationLibraryMetrics")):
                for metric in array_of(sm.get("metrics")):
                    for kind in ("gauge", "sum", "histogram", "exponentialHistogram", "summary"):
                        if isinstance(metric.get(kind), dict):
                            points += len(array_of(metric[kind].get("dataPoints")))
    except (AttributeError, TypeError, ValueError) as exc:
        raise InvalidInput.for_field(
            "resourceMetrics", f"malformed OTLP metric data: {str(exc)[:200]}"
        ) from None
    return points


def decode_logs_protobuf(raw: bytes) -> dict[str, Any]:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    data = message_dict(ExportLogsServiceRequest(), raw)
    for rl in data.get("resourceLogs", []):
        for sl in rl.get("scopeLogs", []):
            for rec in sl.get("logRecords", []):
                hex_ids(rec, ("traceId", "spanId"))
    return data


def decode_metrics_protobuf(raw: bytes) -> dict[str, Any]:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    return message_dict(ExportMetricsServiceRequest(), raw)


def encode_signal_response(signal: str) -> bytes:
    """The empty (fully successful) protobuf answer of the logs or metrics export service."""
    if signal == "logs":
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

        data: bytes = ExportLogsServiceResponse().SerializeToString()
        return data
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

    data = ExportMetricsServiceResponse().SerializeToString()
    return data
