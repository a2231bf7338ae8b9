"""OTLP/HTTP receivers: traces (spans -> runs), logs (timeline events), metrics (accepted, dropped), and a
trace's spans with the run each belongs to. JSON or protobuf, gzip or deflate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic_core import from_json

from opslab.api.deps import KnownQuery, TelemetryDep, read_body
from opslab.errors import InvalidInput
from opslab.telemetry import (
    LogsResult,
    MetricsResult,
    OtlpResult,
    TraceView,
    count_metric_points,
    decode_logs_protobuf,
    decode_metrics_protobuf,
    decode_protobuf,
    encode_export_response,
    encode_signal_response,
)

router = APIRouter(tags=["otlp"], dependencies=[KnownQuery])
PROTOBUF = ("application/x-protobuf", "application/protobuf")


class PartialSuccess(BaseModel):
    rejectedSpans: int | None = None  # noqa: N815 (OTLP's JSON field names)
    errorMessage: str | None = None  # noqa: N815


class OtlpTraceAnswer(BaseModel):
    """OTLP's ``ExportTraceServiceResponse`` (JSON), with what opslab made of the export."""

    partialSuccess: PartialSuccess = Field(default_factory=PartialSuccess)  # noqa: N815
    opslab: OtlpResult


class OtlpLogsAnswer(BaseModel):
    partialSuccess: dict[str, object] = Field(default_factory=dict)  # noqa: N815
    opslab: LogsResult


class OtlpMetricsAnswer(BaseModel):
    partialSuccess: dict[str, object] = Field(default_factory=dict)  # noqa: N815
    opslab: MetricsResult


def _body(signal: str) -> dict[str, object]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "description": f"An OTLP Export{signal}ServiceRequest (OTLP/HTTP JSON mapping).",
                    }
                },
                "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }


_PROTOBUF_ANSWER = {"application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}}


def _is_protobuf(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() in PROTOBUF


async def _json_or_protobuf(request: Request, decode: Callable[[bytes], dict[str, Any]]) -> Any:
    raw = await read_body(request)
    if _is_protobuf(request):
        return await to_thread.run_sync(decode, raw)
    if not raw.strip():
        raise InvalidInput.for_field("body", "empty body; expected OTLP JSON")
    try:
        return from_json(raw)
    except ValueError as exc:
        raise InvalidInput.for_field("body", f"malformed JSON: {exc}") from None


@router.post(
    "/v1/traces",
    openapi_extra=_body("Trace"),
    response_model=OtlpTraceAnswer,
    responses={200: {"content": _PROTOBUF_ANSWER}},
)
@router.post(
    "/api/public/otel/v1/traces",
    include_in_schema=False,  # the path the Langfuse SDK posts to: set LANGFUSE_BASE_URL to this service
)
async def ingest_traces(request: Request, svc: TelemetryDep) -> Response:
    """OTLP/HTTP trace export (JSON or protobuf, optionally gzip/deflate) in any of the conventions
    docs/telemetry.md lists. A span that cannot be taken is refused alone (``partialSuccess``)."""
    if _is_protobuf(request):
        raw = await read_body(request)
        result = await to_thread.run_sync(svc.ingest_otlp_protobuf, raw)
        answer = encode_export_response(result.rejected_spans, "; ".join(result.errors))
        return Response(content=answer, media_type="application/x-protobuf")
    body = await _json_or_protobuf(request, decode_protobuf)
    result = await to_thread.run_sync(svc.ingest_otlp, body)
    partial = (
        PartialSuccess(rejectedSpans=result.rejected_spans, errorMessage="; ".join(result.errors))
        if result.rejected_spans
        else PartialSuccess()
    )
    answer_json = OtlpTraceAnswer(partialSuccess=partial, opslab=result)
    return JSONResponse(answer_json.model_dump(mode="json", exclude_none=True))


@router.post(
    "/v1/logs",
    openapi_extra=_body("Logs"),
    response_model=OtlpLogsAnswer,
    responses={200: {"content": _PROTOBUF_ANSWER}},
)
async def ingest_logs(request: Request, svc: TelemetryDep) -> Response:
    """OTLP/HTTP log export: records carrying a trace id become timeline events of that trace's runs;
    others are accepted and dropped."""
    body = await _json_or_protobuf(request, decode_logs_protobuf)
    result = await to_thread.run_sync(svc.ingest_logs, body)
    if _is_protobuf(request):
        return Response(content=encode_signal_response("logs"), media_type="application/x-protobuf")
    return JSONResponse(OtlpLogsAnswer(opslab=result).model_dump(mode="json"))


@router.post(
    "/v1/metrics",
    openapi_extra=_body("Metrics"),
    response_model=OtlpMetricsAnswer,
    responses={200: {"content": _PROTOBUF_ANSWER}},
)
async def ingest_metrics(request: Request) -> Response:
    """OTLP/HTTP metric export: accepted and dropped (fleet metrics come from the runs), so SDKs that
    export every signal stay quiet."""
    body = await _json_or_protobuf(request, decode_metrics_protobuf)
    points = count_metric_points(body)
    if _is_protobuf(request):
        return Response(content=encode_signal_response("metrics"), media_type="application/x-protobuf")
    return JSONResponse(OtlpMetricsAnswer(opslab=MetricsResult(data_points=points)).model_dump(mode="json"))


@router.get("/v1/traces/{trace_id}")
def get_trace(trace_id: str, svc: TelemetryDep) -> TraceView:
    """Every stored span of a trace, each with the run it belongs to or the reason it has none."""
    return svc.trace(trace_id)
