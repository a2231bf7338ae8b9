"""Tables (SQLAlchemy Core). Migrations in ``migrations/versions`` create exactly these.

Steps and tool calls carry a copy of their run's ``started_at`` so that fleet metrics filter by
time without a join.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from opslab.store.types import UTCDateTime

metadata = MetaData()

ID = 200

agent_runs = Table(
    "agent_runs",
    metadata,
    Column("run_id", String(ID), primary_key=True),
    Column("agent_name", String(ID), nullable=False),
    Column("agent_version", String(ID)),
    Column("model", String(ID)),
    Column("environment", String(ID)),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime()),
    Column("status", String(20), nullable=False),
    Column("error_type", Text),
    Column("error_message", Text),
    Column("trace_id", String(ID)),
    Column("correlation_ids", JSON, nullable=False),
    Column("tokens_prompt", Integer),
    Column("tokens_completion", Integer),
    Column("total_cost_usd", Float),
    Column("attributes", JSON, nullable=False),
    Column("source", String(20), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("ingested_at", UTCDateTime(), nullable=False),
    # Added in 0007: who and what the run was for (sessions, users, tags, metadata, input and output).
    Column("session_id", String(ID)),
    Column("user_id", String(ID)),
    Column("tags", JSON),
    Column("run_metadata", JSON),
    Column("input_text", Text),
    Column("output_text", Text),
    Index("ix_agent_runs_started_at", "started_at", "run_id"),
    Index("ix_agent_runs_session", "session_id", "started_at"),
    Index("ix_agent_runs_user", "user_id", "started_at"),
    Index("ix_agent_runs_trace", "trace_id"),
    Index("ix_agent_runs_agent", "agent_name", "agent_version"),
    # Covering index: the fleet overview's count/success/cost over a window never touches the table.
    Index("ix_agent_runs_window", "started_at", "status", "total_cost_usd"),
    # The fleet series on SQLite, which would otherwise sort the window: each (model, agent) pair's runs
    # in a bucket are one covering range, and the pairs are one seek apart.
    # (PostgreSQL hashes instead and does not read it; it is there because the schema is one.)
    Index("ix_agent_runs_pair", "model", "agent_name", "started_at", "status", "total_cost_usd"),
)

run_steps = Table(
    "run_steps",
    metadata,
    Column("run_id", String(ID), ForeignKey("agent_runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("step_id", String(ID), nullable=False),
    Column("name", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("started_at", UTCDateTime()),
    Column("ended_at", UTCDateTime()),
    Column("input_summary", Text),
    Column("output_summary", Text),
    Column("retries", Integer, nullable=False),
    Column("latency_ms", Float),
    Column("agent", Text),
    Column("run_started_at", UTCDateTime(), nullable=False),
    Column("kind", String(40)),
    Column("model", String(ID)),
    Column("tokens_prompt", Integer),
    Column("tokens_completion", Integer),
    Column("messages", JSON),  # {"input": [Message…], "output": [Message…]} of an LLM step, else NULL
    Index("ix_run_steps_window", "run_started_at", "latency_ms"),
    # p95 walks this from the top: about 5% of the index whatever the window (see store/runs.py).
    Index("ix_run_steps_latency", "latency_ms", "run_started_at"),
)

tool_calls = Table(
    "tool_calls",
    metadata,
    Column("run_id", String(ID), ForeignKey("agent_runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("call_id", String(ID), nullable=False),
    Column("step_id", String(ID)),
    Column("tool_name", String(ID), nullable=False),
    Column("status", String(20), nullable=False),
    Column("args_json", JSON),
    Column("args_hash", Text),
    Column("result_summary", Text),
    Column("error_class", Text),
    Column("error_message", Text),
    Column("status_code", Integer),
    Column("retries", Integer, nullable=False),
    Column("latency_ms", Float),
    Column("started_at", UTCDateTime()),
    Column("ended_at", UTCDateTime()),
    Column("run_started_at", UTCDateTime(), nullable=False),
    Index("ix_tool_calls_failing", "status", "run_started_at", "tool_name"),
)

guardrail_events = Table(
    "guardrail_events",
    metadata,
    Column("run_id", String(ID), ForeignKey("agent_runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("event_id", String(ID), nullable=False),
    Column("type", String(ID), nullable=False),
    Column("message", Text, nullable=False),
    Column("step_id", String(ID)),
    Column("call_id", String(ID)),
    Column("created_at", UTCDateTime()),
)

# One row per tag of a run, so that a tag filter is an index lookup on both databases.
run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(ID), ForeignKey("agent_runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(ID), primary_key=True),
    Index("ix_run_tags_tag", "tag", "run_id"),
)

# Feedback on runs. No foreign key: a score outlives a re-ingest of its run (which replaces the run's row).
run_scores = Table(
    "run_scores",
    metadata,
    Column("score_id", String(36), primary_key=True),
    Column("run_id", String(ID), nullable=False),
    Column("name", String(ID), nullable=False),
    Column("value", Float, nullable=False),
    Column("comment", Text),
    Column("source", String(20), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_run_scores_run", "run_id", "created_at"),
    Index("ix_run_scores_name", "name", "value"),
)

# OTLP log records that carry a trace id: shown on the timeline of that trace's runs.
otel_logs = Table(
    "otel_logs",
    metadata,
    Column("log_id", Integer, primary_key=True, autoincrement=True),
    Column("trace_id", String(64), nullable=False),
    Column("span_id", String(64)),
    Column("at", UTCDateTime()),
    Column("severity", String(40), nullable=False),
    Column("body", Text, nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Index("ix_otel_logs_trace", "trace_id", "at"),
)

# A trace's spans, one JSON array a trace (each span as ``telemetry.Span.to_json`` writes it): they are
# only ever read and written together, an export re-mapping every trace it touches (store/spans.py).
otel_traces = Table(
    "otel_traces",
    metadata,
    Column("trace_id", String(64), primary_key=True),
    Column("spans", JSON, nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
)

DEDUPE_LIVE = "status NOT IN ('failed', 'cancelled', 'crashed') AND dedupe_key IS NOT NULL"

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(50), nullable=False),
    Column("status", String(20), nullable=False),
    Column("pct", Float, nullable=False),
    Column("step", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("result", JSON),
    Column("error", JSON),
    Column("subject", String(ID)),
    Column("group_id", String(36)),
    Column("dedupe_key", String(ID)),
    Column("idempotency_key", String(ID)),
    Column("owner", String(ID)),
    Column("queue_ref", String(80)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime()),
    Column("finished_at", UTCDateTime()),
    Column("heartbeat_at", UTCDateTime()),
    Index("ix_jobs_subject", "kind", "subject", "created_at"),
    Index("ix_jobs_status", "status", "heartbeat_at"),
    Index("uq_jobs_idempotency", "kind", "idempotency_key", unique=True),
    Index("ix_jobs_group", "group_id", "status"),
    # At most one live-or-succeeded job per dedupe key: concurrent identical requests converge on one job.
    Index(
        "uq_jobs_dedupe_live",
        "kind",
        "dedupe_key",
        unique=True,
        sqlite_where=text(DEDUPE_LIVE),
        postgresql_where=text(DEDUPE_LIVE),
    ),
)

# Every state change of a job (its progress events), so a late SSE client sees the whole story.
job_events = Table(
    "job_events",
    metadata,
    Column("job_id", String(36), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("status", String(20), nullable=False),
    Column("step", Text, nullable=False),
    Column("pct", Float, nullable=False),
    Column("message", Text, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

CHILD_TABLES = (run_steps, tool_calls, guardrail_events, run_tags)

# The responder's incidents: the whole typed record as JSON, with the columns lists filter on beside it.
incidents = Table(
    "incidents",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("category", String(64)),
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("resolved_at", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("version", Integer, nullable=False),  # optimistic concurrency: a save names the version it read
    Column("document", JSON, nullable=False),
    Index("ix_incidents_opened", "opened_at", "id"),
    Index("ix_incidents_status", "status"),
)

# Every decision and action of the responder, appended and never updated.
responder_audit = Table(
    "responder_audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("incident_id", String(64)),
    Column("decision", String(64), nullable=False),
    Column("record", JSON, nullable=False),
    Index("ix_responder_audit_incident", "incident_id", "seq"),
)

# AutoOps: the optimizer's posterior (one JSON document per named optimizer) and every build it learned from.
autoops_state = Table(
    "autoops_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

autoops_builds = Table(
    "autoops_builds",
    metadata,
    Column("build_id", String(64), primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("source", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("error_class", String(40)),
    Column("action_id", Integer),
    Column("record", JSON, nullable=False),
    Index("ix_autoops_builds_at", "at", "build_id"),
)

# Named leases (one holder at a time, renewed by heartbeat, taken over once expired): the leased services
# (the responder, the autoops loop) and a canary's hold on its target. ``token`` grows with every new
# holder: a fencing token that tells a late write of an old holder from the current one's.
leases = Table(
    "leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("holder", String(ID), nullable=False),
    Column("token", Integer, nullable=False),
    Column("acquired_at", UTCDateTime(), nullable=False),
    Column("renewed_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("info", JSON, nullable=False),
)

# Every canary run as its history line (the seed's history.jsonl stays beside the run that wrote it): what
# any replica's API and dashboard list, whichever machine ran the canary.
canary_runs = Table(
    "canary_runs",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("target", String(2048), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("decision", String(20), nullable=False),
    Column("record", JSON, nullable=False),
    Index("ix_canary_runs_started", "started_at"),
)

# The shared state of a leased service (the autoops loop's budget and progress, the responder's kill
# switch): any replica reads and changes it, the lease holder acts on it. ``version`` makes every change a
# compare-and-set.
service_state = Table(
    "service_state",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("state", JSON, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# Knowledge documents every replica reads (the responder's learned incidents): the Markdown text by id; each
# replica writes the ones it lacks into its knowledge folder (``SqlSharedKnowledge.pull``).
knowledge_documents = Table(
    "knowledge_documents",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("text", Text, nullable=False),
    Column("added_at", UTCDateTime(), nullable=False),
    Index("ix_knowledge_documents_added", "added_at"),
)

# Lab runs finished by the service or its workers, as the dashboard lists them; their files are in the
# artifact store (``archived.prefix``), so they outlive the project folder they ran in.
lab_runs = Table(
    "lab_runs",
    metadata,
    Column("run_id", String(ID), primary_key=True),
    Column("experiment_id", String(ID), nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("indexed_at", UTCDateTime(), nullable=False),
    Column("archived", JSON, nullable=False),
    Index("ix_lab_runs_created", "created_at"),
    Index("ix_lab_runs_experiment", "experiment_id", "created_at"),
)
