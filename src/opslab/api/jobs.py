"""One job API for every capability: one way to read ``Last-Event-ID``, one SSE stream of a job.

The stream (``GET …/{id}/stream``), the same for every kind:

- each event is ``id: <seq>`` and ``data: {"status", "step", "pct", "message", "updated_at"}``;
- without ``Last-Event-ID`` the client gets the job's events from the first (they are persisted), then
  each new one live, so a client that connects after the job finished still sees its whole story;
- with ``Last-Event-ID: N`` it gets only the events after N (a reconnecting client skips what it saw);
  anything but an ASCII decimal number is a 422 naming ``Last-Event-ID``;
- the stream ends after the ``done`` or ``failed`` event; a comment ping every 10 s keeps it open;
- a finished job asked for the events after its last one answers **204**: a standard ``EventSource``
  stops reconnecting (a 200 with no events would make it reconnect forever);
- an unknown id (or an id of another kind) is a 404 before the stream starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from anyio import to_thread
from fastapi import Header, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from opslab.errors import InvalidInput
from opslab.jobs import JobService

_EVENT_ID = re.compile(r"[0-9]{1,12}")
PING_S = 10

LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        pattern=r"^\s*[0-9]{1,12}\s*$",
        description="Resume after this event id (the `id:` of the last event received).",
    ),
]


def sse_doc(description: str, data: str, example: str) -> dict[str, Any]:
    """The OpenAPI answer of an SSE route: ``text/event-stream`` whose ``itemSchema`` is one event (as
    OpenAPI 3.2 and schemathesis read a stream) and whose ``schema`` is the whole stream, text or read as
    an array of events (so a generated client returns the text rather than parsing it as JSON)."""
    event = {
        "type": "object",
        "required": ["data"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "event": {"type": "string"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "description": f"JSON: {data}",
            },
        },
    }
    stream = {
        "description": "The stream: `id:`/`data:` lines, one blank line after each event.",
        "anyOf": [{"type": "string"}, {"type": "array", "items": event}],
    }
    return {
        "description": description,
        "content": {"text/event-stream": {"schema": stream, "itemSchema": event, "example": example}},
    }


STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: sse_doc(
        "Server-sent events: one per state change of the job, ending after done/failed.",
        '{"status", "step", "pct", "message", "updated_at"}',
        'id: 3\ndata: {"status":"running","step":"Collecting evidence","pct":30,'
        '"message":"Collecting evidence","updated_at":"2026-11-22T10:00:00.1Z"}\n\n',
    ),
    204: {"description": "The job is finished and Last-Event-ID is its last event: nothing more will come."},
}


def parse_last_event_id(value: str | None) -> int:
    if value is None or not value.strip():
        return 0
    text = value.strip()
    if not _EVENT_ID.fullmatch(text):
        raise InvalidInput.for_field("Last-Event-ID", "expected the numeric id of an event from this stream")
    return int(text)


async def stream_job(
    jobs: JobService, kind: str, job_id: str, request: Request, last_event_id: str | None
) -> Response:
    """The SSE response for job ``job_id`` of ``kind`` (see the module docstring for the behaviour)."""
    after = parse_last_event_id(last_event_id)
    job = await to_thread.run_sync(lambda: jobs.get(job_id, kind=kind))  # 404 before the stream starts
    if job.terminal and 0 < job.seq <= after:
        return Response(status_code=204)

    async def events() -> AsyncIterator[ServerSentEvent]:
        async for event in jobs.events(job_id, after=after):
            if await request.is_disconnected():
                return
            yield ServerSentEvent(data=json.dumps(event.data(), separators=(",", ":")), id=str(event.seq))

    return EventSourceResponse(events(), ping=PING_S, sep="\n")
