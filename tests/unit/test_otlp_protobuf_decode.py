"""OTLP protobuf read straight into spans gives the very spans and refusals of the JSON mapping's path
(``decode_protobuf`` then ``parse_request``), whatever the export holds."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from opslab.errors import InvalidInput, PayloadTooLarge
from opslab.telemetry import Span, decode_protobuf, parse_request
from opslab.telemetry.otlp_protobuf import decode_spans
from tests.conftest import examples

SETTINGS = settings(max_examples=examples(400), deadline=None, suppress_health_check=list(HealthCheck))

ids = st.sampled_from([b"", b"\0" * 8, b"\0" * 16, b"\x01" * 8, b"\xab" * 16, b"\x02" * 33]) | st.binary(
    min_size=1, max_size=16
)
keys = st.sampled_from(["", "gen_ai.operation.name", "k", "service.name", "é"]) | st.text(max_size=6)


def any_values() -> st.SearchStrategy[AnyValue]:
    scalars = st.one_of(
        st.just(AnyValue()),
        st.text(max_size=8).map(lambda v: AnyValue(string_value=v)),
        st.integers(min_value=-(2**63), max_value=2**63 - 1).map(lambda v: AnyValue(int_value=v)),
        st.floats(allow_nan=True, allow_infinity=True).map(lambda v: AnyValue(double_value=v)),
        st.booleans().map(lambda v: AnyValue(bool_value=v)),
        st.binary(max_size=6).map(lambda v: AnyValue(bytes_value=v)),
    )

    def nest(inner: st.SearchStrategy[AnyValue]) -> st.SearchStrategy[AnyValue]:
        def array(values: list[AnyValue]) -> AnyValue:
            out = AnyValue()
            out.array_value.values.extend(values)
            return out

        def kvlist(pairs: list[tuple[str, AnyValue]]) -> AnyValue:
            out = AnyValue()
            out.kvlist_value.values.extend(KeyValue(key=k, value=v) for k, v in pairs)
            return out

        return st.lists(inner, max_size=3).map(array) | st.lists(st.tuples(keys, inner), max_size=3).map(
            kvlist
        )

    return st.recursive(scalars, nest, max_leaves=6)


attributes = st.lists(st.tuples(keys, any_values()), max_size=4)


@st.composite
def exports(draw: st.DrawFn) -> bytes:
    req = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = req.resource_spans.add()
        rs.resource.attributes.extend(KeyValue(key=k, value=v) for k, v in draw(attributes))
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            for _ in range(draw(st.integers(0, 3))):
                sp = ss.spans.add()
                sp.trace_id, sp.span_id, sp.parent_span_id = draw(ids), draw(ids), draw(st.just(b"") | ids)
                sp.name = draw(st.text(max_size=6))
                sp.start_time_unix_nano = draw(st.sampled_from([0, 1, 1_700_000_000_000_000_000, 2**64 - 1]))
                sp.end_time_unix_nano = draw(st.sampled_from([0, 1_700_000_000_000_000_500, 2**64 - 1]))
                sp.status.code = draw(st.sampled_from([0, 1, 2, 7]))
                sp.status.message = draw(st.sampled_from(["", "boom"]))
                sp.attributes.extend(KeyValue(key=k, value=v) for k, v in draw(attributes))
                for _ in range(draw(st.integers(0, 2))):
                    ev = sp.events.add()
                    ev.name = draw(st.sampled_from(["", "exception", "guardrail"]))
                    ev.time_unix_nano = draw(st.sampled_from([0, 1_700_000_000_000_000_100]))
                    ev.attributes.extend(KeyValue(key=k, value=v) for k, v in draw(attributes))
    return req.SerializeToString()


def _comparable(value: Any) -> Any:
    """NaN != NaN: compare a NaN by its name."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def _via_json_mapping(raw: bytes, max_spans: int | None = None) -> tuple[list[Span], list[str]] | str:
    try:
        return parse_request(decode_protobuf(raw, max_spans=max_spans))
    except InvalidInput as exc:
        return f"{type(exc).__name__}: {exc.message}"


def _direct(raw: bytes, max_spans: int | None = None) -> tuple[list[Span], list[str]] | str:
    try:
        return decode_spans(raw, max_spans=max_spans)
    except InvalidInput as exc:
        return f"{type(exc).__name__}: {exc.message}"


def _same(a: tuple[list[Span], list[str]] | str, b: tuple[list[Span], list[str]] | str) -> None:
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    assert [_comparable(s.to_json()) for s in a[0]] == [_comparable(s.to_json()) for s in b[0]]
    assert a[1] == b[1]


@SETTINGS
@given(exports())
def test_protobuf_read_directly_gives_the_json_mappings_spans_and_refusals(raw: bytes) -> None:
    _same(_direct(raw), _via_json_mapping(raw))


def test_every_refusal_reads_as_through_the_json_mapping() -> None:
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    ok = {"trace_id": b"\x01" * 16, "span_id": b"\x02" * 8, "start_time_unix_nano": 5}
    for change in (
        {},
        {"trace_id": b""},
        {"span_id": b"\0" * 8},
        {"trace_id": b"\x01" * 33},
        {"parent_span_id": b"\x03" * 40},
        {"start_time_unix_nano": 0},
    ):
        spans.add(**{**ok, **change})
    spans.add(**ok).attributes.add(key="", value=AnyValue(string_value="x"))
    raw = req.SerializeToString()
    direct = _direct(raw)
    assert not isinstance(direct, str) and len(direct[0]) == 1 and len(direct[1]) == 6
    _same(direct, _via_json_mapping(raw))


def test_a_resource_attribute_without_a_key_refuses_the_export_as_the_json_mapping_does() -> None:
    req = ExportTraceServiceRequest()
    req.resource_spans.add().resource.attributes.add(key="", value=AnyValue(int_value=1))
    raw = req.SerializeToString()
    assert "resourceSpans[0]" in str(_direct(raw))
    _same(_direct(raw), _via_json_mapping(raw))


def test_too_many_spans_and_bytes_that_are_no_export_are_refused_alike() -> None:
    req = ExportTraceServiceRequest()
    for i in range(3):
        req.resource_spans.add().scope_spans.add().spans.add(
            trace_id=b"\x01" * 16, span_id=bytes([i + 1]) * 8
        )
    raw = req.SerializeToString()
    with pytest.raises(PayloadTooLarge):
        decode_spans(raw, max_spans=2)
    _same(_direct(raw, 2), _via_json_mapping(raw, 2))
    _same(_direct(b"\xff\xff garbage"), _via_json_mapping(b"\xff\xff garbage"))
