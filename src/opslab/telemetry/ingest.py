"""Ingest: parse and check the wire payload, redact secrets, fingerprint the content.

The result, a ``PreparedRun``, is what a ``RunRepository`` upserts. Nothing here touches storage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from opslab.errors import InvalidInput, format_loc, invalid_from_pydantic
from opslab.telemetry.redact import Redactor
from opslab.telemetry.schema import AgentRunIn, RunSource, reference_errors


@dataclass(frozen=True, slots=True)
class PreparedRun:
    run: AgentRunIn
    content_hash: str
    source: RunSource = "native"


def parse_run(data: Any, *, loc_prefix: tuple[Any, ...] = ()) -> AgentRunIn:
    """Validate one payload; raise ``InvalidInput`` naming every offending field."""
    if not isinstance(data, dict):
        raise InvalidInput.for_field(format_loc(loc_prefix), "expected a JSON object (one agent run)")
    try:
        run = AgentRunIn.model_validate(data)
    except ValidationError as exc:
        raise invalid_from_pydantic(exc.errors(include_url=False), loc_prefix=loc_prefix) from None
    errors = reference_errors(run)
    if errors:
        prefix = format_loc(loc_prefix)
        if prefix != "body":
            errors = [{"field": f"{prefix}.{e['field']}", "message": e["message"]} for e in errors]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidInput(f"{errors[0]['field']}: {errors[0]['message']}{more}", details={"errors": errors})
    return run


def prepare_run(run: AgentRunIn, *, redactor: Redactor, source: RunSource = "native") -> PreparedRun:
    if redactor.enabled:
        run = redact_run(run, redactor)
    digest = hashlib.sha256(run.model_dump_json(exclude={"attributes"}).encode()).hexdigest()
    return PreparedRun(run=run, content_hash=digest, source=source)


def redact_run(run: AgentRunIn, redactor: Redactor) -> AgentRunIn:
    t = redactor.text

    def opt(value: str | None) -> str | None:
        return None if value is None else t(value)

    steps = [
        s.model_copy(update={"input_summary": opt(s.input_summary), "output_summary": opt(s.output_summary)})
        for s in run.steps
    ]
    calls = [
        c.model_copy(
            update={
                "args_json": redactor.value(c.args_json),
                "result_summary": opt(c.result_summary),
                "error_message": opt(c.error_message),
            }
        )
        for c in run.tool_calls
    ]
    guards = [g.model_copy(update={"message": t(g.message)}) for g in run.guardrail_events]
    return run.model_copy(
        update={
            "error_message": opt(run.error_message),
            "steps": steps,
            "tool_calls": calls,
            "guardrail_events": guards,
            "attributes": redactor.value(run.attributes),
        }
    )


def prepare_many(
    items: Iterable[Any], *, redactor: Redactor, source: RunSource = "native"
) -> list[PreparedRun | InvalidInput]:
    """Each item parsed on its own: a bad one yields its error and never blocks the good ones."""
    out: list[PreparedRun | InvalidInput] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        try:
            run = parse_run(item, loc_prefix=(i,))
        except InvalidInput as exc:
            out.append(exc)
            continue
        if run.run_id in seen:
            out.append(
                InvalidInput.for_field(f"[{i}].run_id", f"{run.run_id!r} appears earlier in this batch")
            )
            continue
        seen.add(run.run_id)
        out.append(prepare_run(run, redactor=redactor, source=source))
    return out
