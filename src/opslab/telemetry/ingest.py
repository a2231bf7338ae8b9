"""Ingest: parse and check the wire payload, redact secrets, fingerprint the content.

The result, a ``PreparedRun``, is what a ``RunRepository`` upserts. Nothing here touches storage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json, to_json

from opslab.errors import InvalidInput, format_loc, invalid_from_pydantic
from opslab.telemetry.redact import Redactor
from opslab.telemetry.schema import (
    ID_PATTERN,
    ID_PATTERN_MESSAGE,
    AgentRunIn,
    RunOrigin,
    RunStatus,
    check_run,
    free_form_values,
    storable_json,
)


class PreparedRun:
    """A run checked, redacted and fingerprinted, ready to upsert: its model, or (runs mapped from spans,
    ``document_ingest``) the document the model validates from, the model made only when asked for."""

    __slots__ = ("_run", "content_hash", "doc", "run_id", "source", "status")

    def __init__(
        self,
        run: AgentRunIn | None = None,
        content_hash: str = "",
        source: RunOrigin = "native",
        *,
        doc: dict[str, Any] | None = None,
    ) -> None:
        # The run's id and status, read without making the model (an observer counting runs needs no more).
        self.run_id: str
        self.status: RunStatus
        if run is not None and doc is None:
            self.run_id, self.status = run.run_id, run.status
        elif run is None and doc is not None:
            self.run_id, self.status = doc["run_id"], doc["status"]
        else:
            raise TypeError("a PreparedRun holds a run or its document")
        self._run, self.doc, self.content_hash, self.source = run, doc, content_hash, source

    @classmethod
    def summary(cls, run_id: str, status: RunStatus, content_hash: str, source: RunOrigin) -> PreparedRun:
        """A run prepared, and made into rows, in another process (a share of an OTLP export planned
        there): what the caller and the observers need of it, without its model or document."""
        made = cls.__new__(cls)
        made.run_id, made.status, made.content_hash, made.source = run_id, status, content_hash, source
        made._run, made.doc = None, None
        return made

    @property
    def run(self) -> AgentRunIn:
        """The model, made from the document when first asked for (a model per step is a sizeable share
        of an OTLP export's ingest: ``run_id`` and ``status`` need none)."""
        if self._run is None:
            if self.doc is None:
                raise LookupError(
                    f"run {self.run_id} was prepared in another process: only its summary is here"
                )
            self._run = AgentRunIn.model_validate(self.doc)
        return self._run

    def __repr__(self) -> str:
        return (
            f"PreparedRun(run_id={self.run_id!r}, content_hash={self.content_hash!r}, source={self.source!r})"
        )


def parse_run(data: Any, *, loc_prefix: tuple[Any, ...] = ()) -> AgentRunIn:
    """Validate one payload; raise ``InvalidInput`` naming every offending field."""
    if not isinstance(data, dict):
        raise InvalidInput.for_field(format_loc(loc_prefix), "expected a JSON object (one agent run)")
    try:
        run = AgentRunIn.model_validate(data)
    except ValidationError as exc:
        raise invalid_from_pydantic(_friendly(exc), loc_prefix=loc_prefix) from None
    check_semantics(run, loc_prefix=loc_prefix)
    return run


def parse_run_json(raw: bytes) -> AgentRunIn:
    """Validate one run straight from JSON bytes (one pass in pydantic-core); ``InvalidInput`` names every
    offending field."""
    try:
        run = AgentRunIn.model_validate_json(raw)
    except ValidationError as exc:
        errors = _friendly(exc)
        if any(e.get("type") == "json_invalid" for e in errors):
            message = next(e["msg"] for e in errors if e.get("type") == "json_invalid")
            raise InvalidInput.for_field("body", f"malformed JSON: {message}") from None
        if any(e.get("type") == "model_type" and not e.get("loc") for e in errors):
            raise InvalidInput.for_field("body", "expected a JSON object (one agent run)") from None
        raise invalid_from_pydantic(errors) from None
    check_semantics(run)
    return run


def _friendly(exc: ValidationError) -> list[Any]:
    errors = exc.errors(include_url=False)
    for e in errors:
        if e.get("type") == "string_pattern_mismatch" and (e.get("ctx") or {}).get("pattern") == ID_PATTERN:
            e["msg"] = ID_PATTERN_MESSAGE
    return list(errors)


def check_semantics(
    run: AgentRunIn,
    *,
    loc_prefix: tuple[Any, ...] = (),
    now: datetime | None = None,
    free_form: bool = True,
) -> None:
    """Cross-field checks and UTC normalisation (``check_run``), raised as one ``InvalidInput``."""
    errors = check_run(run, now=now, free_form=free_form)
    if errors:
        prefix = format_loc(loc_prefix)
        if prefix != "body":
            errors = [{"field": f"{prefix}.{e['field']}", "message": e["message"]} for e in errors]
        raise InvalidInput.for_fields(errors)


def prepare_run(
    run: AgentRunIn, *, redactor: Redactor, source: RunOrigin = "native", redacted: bool = False
) -> PreparedRun:
    """Redact (in place: the run is taken over; not again when ``redacted``) and fingerprint a validated
    run."""
    if redactor.enabled and not redacted:
        redact_run(run, redactor)
    digest = hashlib.sha256(run.model_dump_json(exclude={"attributes"}).encode()).hexdigest()
    return PreparedRun(run=run, content_hash=digest, source=source)


def redact_runs(runs: list[AgentRunIn], redactor: Redactor, *, document: bytes | None = None) -> None:
    """Redact a batch: its texts looked at together first, and its structured values as one JSON
    document (``document`` when the caller made it already). A batch holding no secret anywhere (the
    usual case) costs two looks, not one per run."""
    if not runs or not redactor.enabled:
        return
    texts = "\x00".join(filter(None, (t for run in runs for t in _texts(run))))
    if document is None:
        structured = [v for run in runs for v in _structured(run)]
        document = to_json(structured) if structured else b""
    if redactor.might_hold_secret(texts) or (
        document and redactor.might_hold_secret(document.decode(), keys=True)
    ):
        for run in runs:
            redact_run(run, redactor)


def redact_run(run: AgentRunIn, redactor: Redactor) -> None:
    """Mask secrets in every free-text field, the tool arguments, the metadata and the attributes, in place.

    The run's texts are looked at together first (and its structured values as one JSON document): most
    runs hold no secret, and then no field is looked at one by one."""
    if redactor.might_hold_secret("\x00".join(filter(None, _texts(run)))):
        for obj, fields in _text_fields(run):
            for name in fields:
                value = getattr(obj, name)
                if value:
                    masked = redactor.text(value)
                    if masked is not value:  # assignment on a model is not free: only when something changed
                        setattr(obj, name, masked)
    structured = _structured(run)
    if not structured or not redactor.might_hold_secret(to_json(structured).decode(), keys=True):
        return
    for c in run.tool_calls:
        if c.args_json:
            args = redactor.value(c.args_json)
            if args is not c.args_json:
                c.args_json = args
    for name in ("attributes", "metadata"):
        value = getattr(run, name)
        if value:
            masked = redactor.value(value)
            if masked is not value:
                setattr(run, name, masked)


def _structured(run: AgentRunIn) -> list[Any]:
    return [value for _, value in free_form_values(run)]


def _texts(run: AgentRunIn) -> list[str | None]:
    """Every free text of the run (``_text_fields``' values), gathered without a call per field."""
    texts: list[str | None] = [run.error_message, run.input, run.output]
    for s in run.steps:
        texts += (s.input_summary, s.output_summary)
        for m in (*s.input_messages, *s.output_messages):
            texts.append(m.content)
            texts.extend(call.arguments for call in m.tool_calls)
    for c in run.tool_calls:
        texts += (c.result_summary, c.error_message)
    texts.extend(g.message for g in run.guardrail_events)
    return texts


def _text_fields(run: AgentRunIn) -> Iterator[tuple[Any, tuple[str, ...]]]:
    yield run, ("error_message", "input", "output")
    for s in run.steps:
        yield s, ("input_summary", "output_summary")
        for m in (*s.input_messages, *s.output_messages):
            yield m, ("content",)
            for call in m.tool_calls:
                yield call, ("arguments",)
    for c in run.tool_calls:
        yield c, ("result_summary", "error_message")
    for g in run.guardrail_events:
        yield g, ("message",)


_RUN_LIST: TypeAdapter[list[AgentRunIn]] = TypeAdapter(list[AgentRunIn])


def prepare_many(
    items: Iterable[Any], *, redactor: Redactor, source: RunOrigin = "native"
) -> list[PreparedRun | InvalidInput]:
    """Each item parsed on its own: a bad one yields its error and never blocks the good ones."""

    def parse(i: int, item: Any) -> AgentRunIn | InvalidInput:
        try:
            return parse_run(item, loc_prefix=(i,))
        except InvalidInput as exc:
            return exc

    return _prepare_each([parse(i, item) for i, item in enumerate(items)], redactor=redactor, source=source)


def prepare_many_json(
    raw: bytes,
    *,
    redactor: Redactor,
    source: RunOrigin = "native",
    check_count: Callable[[int], None] | None = None,
) -> list[PreparedRun | InvalidInput]:
    """A JSON array of runs straight from bytes: one fast validation pass when every item is well-formed
    (the usual case), the item-by-item path otherwise so each bad item gets its own error. ``check_count``
    sees the number of items before any is prepared (or, on the slow path, validated one by one)."""
    try:
        runs = _RUN_LIST.validate_json(raw)
    except ValidationError:
        try:
            items = from_json(raw)
        except ValueError as exc:
            raise InvalidInput.for_field("body", f"malformed JSON: {exc}") from None
        if not isinstance(items, list):
            raise InvalidInput.for_field("body", "expected a JSON array of agent runs") from None
        if check_count is not None:
            check_count(len(items))
        return prepare_many(items, redactor=redactor, source=source)
    if check_count is not None:
        check_count(len(runs))

    now = datetime.now(UTC)  # one clock reading for the batch
    # The batch's free-form values as one JSON document: when it shows them all storable (the usual
    # case) no run's are looked at again, and redaction looks for secrets in the same text.
    document = storable_json([v for run in runs for v in _structured(run)])

    def check(i: int, run: AgentRunIn) -> AgentRunIn | InvalidInput:
        try:
            check_semantics(run, loc_prefix=(i,), now=now, free_form=document is None)
            return run
        except InvalidInput as exc:
            return exc

    checked = [check(i, r) for i, r in enumerate(runs)]
    return _prepare_each(checked, redactor=redactor, source=source, document=document)


def _prepare_each(
    parsed: list[AgentRunIn | InvalidInput],
    *,
    redactor: Redactor,
    source: RunOrigin,
    document: bytes | None = None,
) -> list[PreparedRun | InvalidInput]:
    out: list[AgentRunIn | InvalidInput] = []
    seen: set[str] = set()
    for i, run in enumerate(parsed):
        if isinstance(run, InvalidInput):
            out.append(run)
        elif run.run_id in seen:
            out.append(
                InvalidInput.for_field(f"[{i}].run_id", f"{run.run_id!r} appears earlier in this batch")
            )
        else:
            seen.add(run.run_id)
            out.append(run)
    redact_runs([r for r in out if not isinstance(r, InvalidInput)], redactor, document=document)
    return [
        r if isinstance(r, InvalidInput) else prepare_run(r, redactor=redactor, source=source, redacted=True)
        for r in out
    ]
