"""Runs as the rows of their tables, written in bulk (``store.bulk``).

A prepared run holds its model, or (runs mapped from spans) the document the model validates from: the
same values under the same names, so both give the very same rows. Values are converted once per batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from opslab.store.bulk import Batch, DatetimeParam, Row, batches, datetime_param, json_param
from opslab.store.tables import agent_runs, guardrail_events, run_steps, run_tags, tool_calls
from opslab.telemetry import AgentRunIn, Message, PreparedRun


@dataclass
class RunRows:
    """The rows of a batch of runs, tuples in each table's column order (``tables``)."""

    runs: list[Row] = field(default_factory=list)
    steps: list[Row] = field(default_factory=list)
    calls: list[Row] = field(default_factory=list)
    guards: list[Row] = field(default_factory=list)
    tags: list[Row] = field(default_factory=list)

    @classmethod
    def of(cls, dialect: str, prepared: Sequence[PreparedRun]) -> RunRows:
        """The rows of ``prepared`` as ``dialect``'s (``Connection.dialect.name``) columns take them."""
        dt = datetime_param(dialect, (t for p in prepared for t in _timestamps(p)))
        now = dt(datetime.now(UTC))
        out = cls()
        for p in prepared:
            if p.doc is not None:
                out._add_doc(p, p.doc, dt, now)
            else:
                out._add_model(p, p.run, dt, now)
        return out

    def batches(self) -> list[Batch]:
        """The rows grouped for the driver (``bulk.batches``), a run's before its parts'."""
        return [
            batch
            for table, rows in (
                (agent_runs, self.runs),
                (run_steps, self.steps),
                (tool_calls, self.calls),
                (guardrail_events, self.guards),
                (run_tags, self.tags),
            )
            for batch in batches(table, rows)
        ]

    def _add_model(self, p: PreparedRun, r: AgentRunIn, dt: DatetimeParam, now: Any) -> None:
        rid, js, run_at = r.run_id, json_param, dt(r.started_at)
        self.runs.append(
            (
                rid,
                r.agent_name,
                r.agent_version,
                r.model,
                r.environment,
                run_at,
                dt(r.ended_at),
                r.status,
                r.error_type,
                r.error_message,
                r.trace_id,
                js(r.correlation_ids),
                r.cost.tokens_prompt,
                r.cost.tokens_completion,
                r.cost.total_cost_usd,
                js(r.attributes),
                p.source,
                p.content_hash,
                now,
                r.session_id,
                r.user_id,
                js(r.tags) if r.tags else None,
                js(r.metadata) if r.metadata else None,
                r.input,
                r.output,
            )
        )
        self.tags.extend((rid, tag) for tag in r.tags)
        self.steps.extend(
            (
                rid,
                seq,
                s.step_id,
                s.name,
                s.status,
                dt(s.started_at),
                dt(s.ended_at),
                s.input_summary,
                s.output_summary,
                s.retries,
                s.latency_ms,
                s.agent,
                run_at,
                s.kind,
                s.model,
                s.tokens_prompt,
                s.tokens_completion,
                messages_json(s.input_messages, s.output_messages),
            )
            for seq, s in enumerate(r.steps)
        )
        self.calls.extend(
            (
                rid,
                seq,
                c.call_id,
                c.step_id,
                c.tool_name,
                c.status,
                js(c.args_json),
                c.args_hash,
                c.result_summary,
                c.error_class,
                c.error_message,
                c.status_code,
                c.retries,
                c.latency_ms,
                dt(c.started_at),
                dt(c.ended_at),
                run_at,
            )
            for seq, c in enumerate(r.tool_calls)
        )
        self.guards.extend(
            (rid, seq, g.event_id, g.type, g.message, g.step_id, g.call_id, dt(g.created_at))
            for seq, g in enumerate(r.guardrail_events)
        )

    def _add_doc(self, p: PreparedRun, d: dict[str, Any], dt: DatetimeParam, now: Any) -> None:
        """``_add_model`` on the document (``telemetry.document_ingest``: the models' fields, by name)."""
        rid, js, run_at = d["run_id"], json_param, dt(d["started_at"])
        (agent_name, agent_version, model, environment, ended_at, status, error_type, error_message) = (
            _RUN_HEAD(d)
        )
        cost, tags, metadata = d["cost"], d["tags"], d["metadata"]
        self.runs.append(
            (
                rid,
                agent_name,
                agent_version,
                model,
                environment,
                run_at,
                dt(ended_at),
                status,
                error_type,
                error_message,
                d["trace_id"],
                js(d["correlation_ids"]),
                cost["tokens_prompt"],
                cost["tokens_completion"],
                cost["total_cost_usd"],
                js(d["attributes"]),
                p.source,
                p.content_hash,
                now,
                d["session_id"],
                d["user_id"],
                js(tags) if tags else None,
                js(metadata) if metadata else None,
                d["input"],
                d["output"],
            )
        )
        self.tags.extend((rid, tag) for tag in tags)
        steps = self.steps
        for seq, s in enumerate(d["steps"]):
            sid, name, st, start, end, summary_in, summary_out, retries, latency, agent = _STEP_HEAD(s)
            kind, model, tokens_in, tokens_out, asked, answered = _STEP_TAIL(s)
            steps.append(
                (
                    rid,
                    seq,
                    sid,
                    name,
                    st,
                    dt(start),
                    dt(end),
                    summary_in,
                    summary_out,
                    retries,
                    latency,
                    agent,
                    run_at,
                    kind,
                    model,
                    tokens_in,
                    tokens_out,
                    messages_json(asked, answered) if asked or answered else None,
                )
            )
        for seq, c in enumerate(d["tool_calls"]):
            self.calls.append(
                (
                    rid,
                    seq,
                    *_CALL_HEAD(c),
                    js(c["args_json"]),
                    *_CALL_TAIL(c),
                    dt(c["started_at"]),
                    dt(c["ended_at"]),
                    run_at,
                )
            )
        self.guards.extend(
            (rid, seq, *_GUARD(g), dt(g["created_at"])) for seq, g in enumerate(d["guardrail_events"])
        )


_RUN_HEAD = itemgetter(
    "agent_name",
    "agent_version",
    "model",
    "environment",
    "ended_at",
    "status",
    "error_type",
    "error_message",
)
_STEP_HEAD = itemgetter(
    "step_id",
    "name",
    "status",
    "started_at",
    "ended_at",
    "input_summary",
    "output_summary",
    "retries",
    "latency_ms",
    "agent",
)
_STEP_TAIL = itemgetter(
    "kind", "model", "tokens_prompt", "tokens_completion", "input_messages", "output_messages"
)
_CALL_HEAD = itemgetter("call_id", "step_id", "tool_name", "status")
_CALL_TAIL = itemgetter(
    "args_hash", "result_summary", "error_class", "error_message", "status_code", "retries", "latency_ms"
)
_GUARD = itemgetter("event_id", "type", "message", "step_id", "call_id")


def _timestamps(p: PreparedRun) -> Iterator[datetime | None]:
    if p.doc is not None:
        d = p.doc
        yield d["started_at"]
        yield d["ended_at"]
        for part in (*d["steps"], *d["tool_calls"]):
            yield part["started_at"]
            yield part["ended_at"]
        for g in d["guardrail_events"]:
            yield g["created_at"]
        return
    run = p.run
    yield run.started_at
    yield run.ended_at
    for s in run.steps:
        yield s.started_at
        yield s.ended_at
    for c in run.tool_calls:
        yield c.started_at
        yield c.ended_at
    for g in run.guardrail_events:
        yield g.created_at


def messages_json(asked: list[Message], answered: list[Message]) -> str | None:
    """An LLM step's messages as the ``messages`` column holds them (NULL for a step without any)."""
    if not asked and not answered:
        return None
    return json_param(
        {
            "input": [m.model_dump(exclude_defaults=True) for m in asked],
            "output": [m.model_dump(exclude_defaults=True) for m in answered],
        }
    )
