"""OTLP/HTTP trace exports of a run's trials -> each trial's ``out/otel_spans.jsonl``.

No sockets here: ``TraceReceiver.handle`` takes a request (method, path, two headers, body) and returns
the reply, so the server around it (``otel.OtlpCollector``) stays a thin shell and tests call it as is.

Routes: ``POST /trials/<trial_id>/v1/traces`` (what an SDK derives from ``OTEL_EXPORTER_OTLP_ENDPOINT``;
the bare ``/trials/<trial_id>`` too), protobuf or JSON, gzip or deflate. ``/v1/metrics`` and ``/v1/logs``
under a trial are accepted and dropped, so that an auto-instrumented harness logs no export failures.
A refusal is an HTTP 4xx with a ``google.rpc.Status`` body in the request's encoding, as OTLP/HTTP
specifies: 400 a malformed body, 404 a trial that is not running (no ``out/`` folder), 405 a method
other than POST, 413 a body over ``MAX_BODY``, 415 a content type that is neither.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from opslab.errors import InvalidInput, NotFound, OpslabError, PayloadTooLarge
from opslab.lab.events import SPANS_FILE
from opslab.telemetry import decode_protobuf, encode_export_response, parse_request

MAX_BODY = 64 * 1024 * 1024  # the OTel SDKs' own default limit per export request
TRIAL_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")  # a path segment: no separator, no dot-dot
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_PROTOBUF_TYPES = frozenset({PROTOBUF, "application/protobuf"})
_DROPPED_SIGNALS = frozenset({"v1/metrics", "v1/logs"})
# HTTP status -> google.rpc.Code, for the Status body of a refusal.
_GRPC_CODES = {400: 3, 404: 5, 405: 12, 413: 8, 415: 3, 500: 13}


@dataclass(frozen=True, slots=True)
class OtlpReply:
    status: int
    content_type: str
    body: bytes
    spans: int = 0  # spans written


class TraceReceiver:
    """Writes the spans of each export request to the trial its path names (see the module)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.trials_dir = os.path.join(run_dir, "trials")
        self._ok_protobuf = encode_export_response(0, "")

    def handle(
        self, method: str, path: str, content_type: str, content_encoding: str, body: bytes
    ) -> OtlpReply:
        media = content_type.split(";", 1)[0].strip().lower()
        protobuf = media in _PROTOBUF_TYPES
        try:
            trial_id, signal = _route(path)
            if method != "POST":
                return refusal(405, f"{method} is not supported: OTLP/HTTP exports are POSTs", protobuf)
            if not protobuf and media != JSON:
                return refusal(415, f"content type {media or 'none'!r}: expected {PROTOBUF} or {JSON}", False)
            if signal in _DROPPED_SIGNALS:
                return OtlpReply(200, PROTOBUF if protobuf else JSON, b"" if protobuf else b"{}")
            written = self._write(trial_id, _decode(_inflate(body, content_encoding), protobuf=protobuf))
        except OpslabError as exc:
            return refusal(http_status(exc), exc.message, protobuf)
        if protobuf:
            return OtlpReply(200, PROTOBUF, self._ok_protobuf, written)
        return OtlpReply(200, JSON, b"{}", written)

    def _write(self, trial_id: str, spans: list[dict[str, object]]) -> int:
        out_dir = os.path.join(self.trials_dir, trial_id, "out")
        if not os.path.isdir(out_dir):
            raise NotFound(f"trial {trial_id!r} is not running in this lab run")
        if not spans:
            return 0
        data = "".join(json.dumps(s, separators=(",", ":")) + "\n" for s in spans).encode()
        try:
            # One O_APPEND write per request: exports of one trial that arrive together never interleave.
            fd = os.open(os.path.join(out_dir, SPANS_FILE), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except (FileNotFoundError, NotADirectoryError):  # the trial finished (or restarted) meanwhile
            raise NotFound(f"trial {trial_id!r} is not running in this lab run") from None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        return len(spans)


def _route(path: str) -> tuple[str, str]:
    """``/trials/<id>[/v1/<signal>]`` -> (trial id, ``v1/<signal>``); ``NotFound`` for any other path."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    if len(parts) in (2, 4) and parts[0] == "trials" and TRIAL_ID.fullmatch(parts[1]):
        signal = "/".join(parts[2:]) or "v1/traces"
        if signal == "v1/traces" or signal in _DROPPED_SIGNALS:
            return parts[1], signal
    raise NotFound(f"no such endpoint {path[:200]!r}: post spans to /trials/<trial_id>/v1/traces")


def _inflate(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise InvalidInput.for_field("content-encoding", f"{encoding!r} is not supported (gzip, deflate)")
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        data = inflater.decompress(body, MAX_BODY)
    except zlib.error as exc:
        raise InvalidInput.for_field("body", f"not valid {encoding} data: {exc}") from None
    if inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the request body inflates to more than {MAX_BODY} bytes")
    return data


def _decode(body: bytes, *, protobuf: bool) -> list[dict[str, object]]:
    """The request's spans as JSON mappings (``telemetry.Span.to_json``), parsed by the telemetry package."""
    if protobuf:
        request = decode_protobuf(body)
    else:
        try:
            request = json.loads(body)
        except ValueError as exc:  # UnicodeDecodeError included
            raise InvalidInput.for_field("body", f"malformed JSON: {exc}") from None
    spans, refused = parse_request(request)
    if refused:
        raise InvalidInput.for_field("resourceSpans", refused[0])
    return [span.to_json() for span in spans]


def http_status(exc: OpslabError) -> int:
    if isinstance(exc, PayloadTooLarge):
        return 413
    if isinstance(exc, InvalidInput):
        return 400  # OTLP/HTTP: bad data is a 400, which exporters do not retry
    if isinstance(exc, NotFound):
        return 404
    return 500


def refusal(status: int, message: str, protobuf: bool) -> OtlpReply:
    """An error reply: a ``google.rpc.Status`` (code, message), protobuf or JSON like the request."""
    code = _GRPC_CODES.get(status, 2)
    if not protobuf:
        return OtlpReply(status, JSON, json.dumps({"code": code, "message": message}).encode())
    # Status is two scalar fields: encoded here rather than depending on googleapis-common-protos.
    text = message.encode()
    return OtlpReply(status, PROTOBUF, b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if not n:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)
