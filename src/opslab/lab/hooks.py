"""The harness manifest and the check of an event stream against it (``opslab lab validate-hooks``).

The harness manifest (``.lab/harness_manifest.json``) declares what a harness emits::

    {
      "schema_version": 1,
      "integration_level": "cli_events",
      "events": {
        "step": {"required": ["name"]},
        "tool_call": {"required": ["tool", "status"]},
        "checkpoint": {"required": ["path", "label"]}
      },
      "allow_unknown_types": false
    }

``checkpoint`` is always known and always needs a ``path`` (``opslab lab fork`` starts from it). Each
line of ``harness_events.jsonl`` must be a JSON object with a string ``type`` that is declared (unless
``allow_unknown_types``), carrying that type's required fields (not null). Where present, ``seq`` must be
an integer that increases strictly from line to line, and the timestamps (``ts``, ``timestamp``,
``time``, ``at``, ``started_at``: RFC 3339 or Unix seconds/ms) must parse and never go back, with
``ended_at`` not before ``started_at``. At ``cli_basic`` a harness writes no events at all. Blank lines
are skipped, as the runner skips them. Without a manifest the checks are the same with every type allowed.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opslab.errors import InvalidInput, invalid_from_pydantic
from opslab.lab.config import IntegrationLevel
from opslab.lab.events import parse_time

HARNESS_MANIFEST = Path(".lab/harness_manifest.json")
TIME_KEYS = ("ts", "timestamp", "time", "at", "started_at")
MAX_LISTED = 100  # problems listed; the count says how many there were


class EventSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    required: list[str] = Field(default_factory=list)
    description: str = ""


BUILTIN_EVENTS = {"checkpoint": EventSpec(required=["path"], description="a checkpoint fork can start from")}


class HarnessManifest(BaseModel):
    """``.lab/harness_manifest.json``: the harness's integration level and the events it declares."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    integration_level: IntegrationLevel
    events: dict[str, EventSpec] = Field(default_factory=dict)
    allow_unknown_types: bool = False

    def spec(self, kind: str) -> EventSpec | None:
        declared, builtin = self.events.get(kind), BUILTIN_EVENTS.get(kind)
        if declared is None or builtin is None:
            return declared or builtin
        return EventSpec(required=[*builtin.required, *declared.required], description=declared.description)


DEFAULT_MANIFEST = HarnessManifest(integration_level="cli_events", allow_unknown_types=True)


class Problem(BaseModel):
    line: int | None = None
    field: str  # a JSON path in the line's event ($.tool) or the file
    message: str


class EventsReport(BaseModel):
    """A valid stream: how many events of which type, against which manifest."""

    file: Path
    manifest: Path | None
    integration_level: IntegrationLevel
    events: int
    types: dict[str, int]


def load_harness_manifest(path: Path | None) -> tuple[HarnessManifest, Path | None]:
    """The manifest at ``path``; else ``.lab/harness_manifest.json`` if there is one; else the default."""
    if path is None:
        if not HARNESS_MANIFEST.is_file():
            return DEFAULT_MANIFEST, None
        path = HARNESS_MANIFEST
    if not path.is_file():
        raise InvalidInput.for_field("--manifest", f"{path}: no such file")
    try:
        return HarnessManifest.model_validate_json(path.read_bytes(), strict=True), path
    except ValidationError as exc:
        raise invalid_from_pydantic(list(exc.errors(include_url=False)), loc_prefix=(path.name,)) from None


def validate_hooks(events_path: Path, manifest_path: Path | None = None) -> EventsReport:
    """Check every line of ``events_path``; ``InvalidInput`` listing each problem by line, else a report."""
    manifest, used = load_harness_manifest(manifest_path)
    if not events_path.is_file():
        raise InvalidInput.for_field("--events", f"{events_path}: no such file")
    problems, types = stream_problems(events_path, manifest)
    if problems:
        raise invalid(events_path, problems, manifest=str(used) if used else None)
    return EventsReport(
        file=events_path,
        manifest=used,
        integration_level=manifest.integration_level,
        events=sum(types.values()),
        types=types,
    )


def invalid(path: Path, problems: list[Problem], **details: object) -> InvalidInput:
    """One ``InvalidInput`` for a file's problems: the first in the message, the first 100 listed."""
    head = problems[0]
    where = f"{path.name} line {head.line}" if head.line is not None else path.name
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return InvalidInput(
        f"{where}: {head.field}: {head.message}{more}",
        details={
            "file": str(path),
            **details,
            "count": len(problems),
            "errors": [p.model_dump(exclude_none=True) for p in problems[:MAX_LISTED]],
        },
    )


def stream_problems(events_path: Path, manifest: HarnessManifest) -> tuple[list[Problem], dict[str, int]]:
    """Every problem of the stream, by line, and the events counted by type."""
    problems: list[Problem] = []
    types: dict[str, int] = {}
    last_seq: int | None = None
    last_time: datetime | None = None
    lines = events_path.read_text(encoding="utf-8", errors="replace").splitlines()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if manifest.integration_level == "cli_basic":
            problems.append(
                Problem(line=n, field="$", message="integration level cli_basic writes no events")
            )
            break
        try:
            event = json.loads(line)
        except ValueError as exc:
            problems.append(Problem(line=n, field="$", message=f"not JSON: {exc}"))
            continue
        if not isinstance(event, dict):
            problems.append(Problem(line=n, field="$", message="not a JSON object"))
            continue
        found = event_problems(event, manifest)
        seq = event.get("seq")
        if seq is not None:
            if not isinstance(seq, int) or isinstance(seq, bool):
                found.append(Problem(field="$.seq", message=f"must be an integer, got {json.dumps(seq)}"))
            else:
                if last_seq is not None and seq <= last_seq:
                    found.append(Problem(field="$.seq", message=f"{seq} does not follow {last_seq}"))
                last_seq = seq
        at_key = next((k for k in TIME_KEYS if event.get(k) is not None), None)
        at = parse_time(event[at_key]) if at_key else None
        if at_key and at is None:
            found.append(Problem(field=f"$.{at_key}", message="not a timestamp (RFC 3339 or Unix time)"))
        elif at is not None:
            if last_time is not None and at < last_time:
                found.append(Problem(field=f"$.{at_key}", message=f"goes back in time (before {last_time})"))
            last_time = at
        ended, started = parse_time(event.get("ended_at")), parse_time(event.get("started_at"))
        if ended and started and ended < started:
            found.append(Problem(field="$.ended_at", message="before started_at"))
        problems.extend(p.model_copy(update={"line": n}) for p in found)
        kind = event.get("type")
        if isinstance(kind, str):
            types[kind] = types.get(kind, 0) + 1
    return problems, types


def event_problems(event: dict[str, object], manifest: HarnessManifest) -> list[Problem]:
    """One event's problems of type and required fields (no line number: the caller knows it)."""
    kind = event.get("type")
    if not isinstance(kind, str) or not kind:
        return [Problem(field="$.type", message="a non-empty string is required")]
    spec = manifest.spec(kind)
    if spec is None:
        if manifest.allow_unknown_types:
            return []
        known = sorted({*manifest.events, *BUILTIN_EVENTS})
        return [
            Problem(field="$.type", message=f"{kind!r} is not declared in the manifest (declared: {known})")
        ]
    found = [
        Problem(field=f"$.{key}", message=f"required for {kind} events")
        for key in dict.fromkeys(spec.required)
        if event.get(key) is None
    ]
    if kind == "checkpoint" and event.get("path") is not None and not isinstance(event["path"], str):
        found.append(Problem(field="$.path", message="must be a string (the checkpoint's path)"))
    return found
