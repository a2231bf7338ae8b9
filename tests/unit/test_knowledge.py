"""The knowledge base: documents parsed strictly, added atomically, and retrieved by symptom."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opslab.errors import Conflict, InvalidInput, NotFound
from opslab.knowledge import (
    Document,
    KnowledgeBase,
    add_document,
    builtin_documents,
    parse_document,
    read_document,
    tokenize,
)
from opslab.rca import PRECEDENCE, REPORT_SCHEMA_VERSION, RcaReport, analyze_run
from opslab.telemetry import parse_run

GOOD = """---
id: cache-stampede
title: Cache stampede on the pricing service
kind: incident
categories: [timeout]
tags: [cache, pricing]
symptoms:
  - pricing lookups slow down all at once after a cache flush
signals:
  - redis hit ratio drops to zero
verification_steps:
  - Check the cache hit ratio at the time of the run
actions:
  - type: config_change
    title: Stagger cache expiry
    description: Add jitter to TTLs so keys do not expire together.
    priority: high
risk: low
---
# Cache stampede

Every key expired together after the nightly flush; the pricing service fell over.
"""


def _with(front: str, body: str = "Body.") -> str:
    return f"---\n{front.strip()}\n---\n{body}\n"


# --- parsing ---------------------------------------------------------------------------------


def test_a_document_parses_into_typed_fields_with_its_body() -> None:
    doc = parse_document(GOOD, source="cache.md", path=Path("cache.md"))
    assert doc.id == "cache-stampede" and doc.kind == "incident" and doc.schema_version == 1
    assert doc.categories == ["timeout"] and doc.tags == ["cache", "pricing"]
    assert doc.actions[0].type == "config_change" and doc.actions[0].priority == "high"
    assert doc.body.startswith("# Cache stampede") and "nightly flush" in doc.body
    assert doc.path == Path("cache.md") and doc.risk == "low"


@pytest.mark.parametrize(
    ("front", "field"),
    [
        ("title: No id\nkind: runbook", "id"),
        ("id: Bad Id!\ntitle: t\nkind: runbook", "id"),
        ("id: ok\ntitle: t\nkind: playbook", "kind"),
        ("id: ok\ntitle: t\nkind: runbook\nsymtoms: [typo]", "symtoms"),
        ("id: ok\ntitle: t\nkind: runbook\nsymptoms: just one string", "symptoms"),
        ("id: ok\ntitle: t\nkind: runbook\nrisk: extreme", "risk"),
        (
            "id: ok\ntitle: t\nkind: runbook\nactions:\n  - {type: code_change, title: a, description: d, "
            "priority: urgent}",
            "actions[0].priority",
        ),
        ("id: ok\ntitle: t\nkind: runbook\nschema_version: 7", "schema_version"),
        ("id: ok\ntitle: t\nkind: runbook\nbody: sneaky", "body"),
        ("id: ok\ntitle: [unclosed", "front_matter"),
    ],
)
def test_bad_front_matter_is_refused_naming_the_file_and_the_field(front: str, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_document(_with(front), source="broken.md")
    fields = [e["field"] for e in err.value.details["errors"]]
    assert fields[0] == field, err.value.message
    assert err.value.message.startswith(f"broken.md: {field}: ")
    assert err.value.details["source"] == "broken.md"


def test_a_file_without_front_matter_is_refused() -> None:
    with pytest.raises(InvalidInput) as err:
        parse_document("# Just Markdown\n\nNo metadata here.", source="plain.md")
    assert "plain.md: front_matter: missing" in err.value.message


def test_an_unreadable_file_is_invalid_input_naming_it(tmp_path: Path) -> None:
    (tmp_path / "latin1.md").write_bytes(b"---\nid: x\n---\ncaf\xe9")
    with pytest.raises(InvalidInput, match="latin1.md"):
        read_document(tmp_path / "latin1.md")


# --- built-in runbooks and the RCA ------------------------------------------------------------


def test_every_rca_category_and_insufficient_evidence_has_one_builtin_runbook() -> None:
    docs = builtin_documents()
    assert all(d.kind == "runbook" and d.path and d.path.name == f"{d.id}.md" for d in docs)
    kb = KnowledgeBase.load()
    for category in [*PRECEDENCE, "insufficient_evidence"]:
        doc = kb.by_category(category)
        assert doc is not None, category
        assert doc.summary and doc.verification_steps and len(doc.actions) >= 2
        assert {"## How to confirm", "## How to fix", "## Risks"} <= set(doc.body.splitlines())
        assert len(doc.symptoms) >= 2 and len(doc.signals) >= 2
    assert kb.by_category("no_such_category") is None


def test_rca_reports_cite_the_runbook_their_actions_come_from(
    run_001: dict[str, Any], run_002: dict[str, Any]
) -> None:
    kb = KnowledgeBase.load()
    report = analyze_run(parse_run(run_001))
    runbook = kb.get("tool-schema-mismatch")
    assert report.runbook is not None and report.runbook.id == runbook.id
    assert report.runbook.title == runbook.title == report.hypotheses[0].title
    assert report.hypotheses[0].runbook_id == "tool-schema-mismatch"
    assert report.verification_steps == runbook.verification_steps
    assert [a.model_dump() for a in report.action_items] == [a.model_dump() for a in runbook.actions]
    insufficient = analyze_run(parse_run(run_002))
    assert insufficient.runbook is not None and insufficient.runbook.id == "insufficient-telemetry"
    assert insufficient.schema_version == REPORT_SCHEMA_VERSION


def test_a_stored_version_1_report_without_runbook_fields_still_validates(run_001: dict[str, Any]) -> None:
    stored = analyze_run(parse_run(run_001)).model_dump(mode="json")
    stored["schema_version"] = 1
    del stored["runbook"]
    for h in stored["hypotheses"]:
        del h["runbook_id"]
    report = RcaReport.model_validate(stored)
    assert report.runbook is None and report.hypotheses[0].runbook_id is None


# --- adding ----------------------------------------------------------------------------------


def test_add_writes_the_document_under_its_id_and_search_finds_it(tmp_path: Path) -> None:
    folder = tmp_path / "knowledge"
    source = tmp_path / "draft.md"
    source.write_text(GOOD)
    doc = add_document(source, folder)
    assert doc.path == folder / "cache-stampede.md"
    assert [p.name for p in folder.iterdir()] == ["cache-stampede.md"]  # no temporary file left
    assert (folder / "cache-stampede.md").read_text() == GOOD
    kb = KnowledgeBase.load(folder)
    assert len(kb) == len(builtin_documents()) + 1 and not kb.is_builtin("cache-stampede")
    hits = kb.search("pricing got slow right after the cache was flushed")
    assert hits[0].document.id == "cache-stampede" and hits[0].rank == 1
    assert kb.list(kind="incident") == [kb.get("cache-stampede")]


def test_add_accepts_the_document_text_itself(tmp_path: Path) -> None:
    doc = add_document(GOOD.replace("cache-stampede", "from-text"), tmp_path)
    assert doc.id == "from-text" and (tmp_path / "from-text.md").is_file()


def test_a_duplicate_id_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    add_document(GOOD, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(Conflict, match="cache-stampede"):
        add_document(GOOD.replace("Cache stampede on", "Another cache stampede on"), tmp_path)
    with pytest.raises(Conflict, match="built-in runbook"):
        add_document(GOOD.replace("id: cache-stampede", "id: timeout"), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_invalid_document_is_not_added(tmp_path: Path) -> None:
    folder = tmp_path / "knowledge"
    with pytest.raises(InvalidInput, match="kind"):
        add_document(GOOD.replace("kind: incident", "kind: postmortem"), folder)
    assert not folder.exists()


def test_two_user_files_with_one_id_are_a_conflict_on_load(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(GOOD)
    (tmp_path / "b.md").write_text(GOOD)
    with pytest.raises(Conflict, match="used twice"):
        KnowledgeBase.load(tmp_path)


# --- search ----------------------------------------------------------------------------------


def test_tokens_are_lowercase_alphanumeric_runs_without_stopwords() -> None:
    assert tokenize("The tool_schema_mismatch: HTTP-422 for /v2/orders!") == [
        "tool",
        "schema",
        "mismatch",
        "http",
        "422",
        "v2",
        "orders",
    ]


@pytest.mark.parametrize("query", ["", "   \n\t"])
def test_an_empty_query_is_invalid_input_naming_query(query: str) -> None:
    with pytest.raises(InvalidInput) as err:
        KnowledgeBase.load().search(query)
    assert err.value.details["errors"][0]["field"] == "query"


def test_search_is_deterministic_filtered_and_limited() -> None:
    kb = KnowledgeBase.load()
    first = kb.search("tool call failed with an error", k=3)
    assert [h.rank for h in first] == [1, 2, 3]
    assert [h.score for h in first] == sorted((h.score for h in first), reverse=True)
    assert first == kb.search("tool call failed with an error", k=3)
    assert kb.search("tool call failed", kind="incident") == []
    assert kb.search("zzzyxxq qqqvvv") == []
    with pytest.raises(InvalidInput, match="k: must be at least 1"):
        kb.search("timeout", k=0)
    with pytest.raises(NotFound):
        kb.get("no-such-runbook")


def test_a_hit_carries_the_line_that_matched_as_its_snippet() -> None:
    hit = KnowledgeBase.load().search("429 too many requests")[0]
    assert hit.document.id == "rate-limited" and "429" in hit.snippet and len(hit.snippet) <= 160


# Symptoms as an on-call engineer would type them, in other words than the runbooks use.
SYMPTOM_QUERIES: dict[str, list[str]] = {
    "context-window-overflow": [
        "the model said this model's maximum context length is 128000 tokens after a long chat",
        "prompt is too long once the whole tool output was pasted into the conversation",
    ],
    "wrong-tool-argument": [
        "the agent passed an order id no earlier tool result contained, digits swapped",
        "the model invented an id in the tool arguments and the refund call found no such record",
    ],
    "unknown-tool": [
        "the model called a function that does not exist in our toolset",
        "unknown tool error: the agent asked for a tool that was removed from the registry",
    ],
    "output-parse-error": [
        "could not parse the model output as json: expecting value",
        "OutputParserException when the llm answered prose instead of the structured format",
    ],
    "step-limit-reached": [
        "the agent hit max iterations before finishing the task",
        "GraphRecursionError: recursion limit reached without a stop condition",
    ],
    "tool-schema-mismatch": [
        "tool call returned 422 unprocessable entity, missing required field",
        "the order API rejects our arguments since their v3 release: unexpected keyword argument customer",
    ],
    "rate-limited": [
        "openai returned too many requests, please retry after 20 seconds",
        "all workers got throttled by the provider during the nightly batch, quota exceeded",
    ],
    "tool-permission": [
        "crm api answered 403 forbidden: the service account lacks write access",
        "after rotating the api key every call says unauthorized",
    ],
    "timeout": [
        "payment service call timed out after 30s, gateway timeout",
        "the step hung until the deadline exceeded because the inventory backend was slow",
    ],
    "planner-loop": [
        "agent stuck invoking search_orders with identical arguments until the iteration limit",
        "run burned 50 steps repeating itself and hit the recursion limit",
    ],
    "retrieval-empty": [
        "knowledge base lookup found zero documents so the answer was not grounded",
        "vector search returns nothing since we re-embedded the corpus",
    ],
    "prompt-regression": [
        "since we shipped the new system prompt in v2.3 the failure rate went up compared to v2.2",
        "after switching model version the evals score dropped",
    ],
    "unknown-failure": [
        "unhandled exception with a stack trace nobody has seen before",
        "weird crash in the agent code, KeyError that does not fit any known pattern",
    ],
    "insufficient-telemetry": [
        "run marked failed but the trace is empty, no spans and no error message were recorded",
        "we cannot tell why it failed: no instrumentation, tracing is off",
    ],
    "db-pool-exhaustion": [
        "QueuePool limit reached, connection timed out",
        "every database connection is checked out and requests wait until they get a 503",
    ],
    "bad-deploy": [
        "right after the release the service throws TypeError and answers 500",
        "errors started with the new version; the previous build was fine",
    ],
    "latency-regression-flag": [
        "p95 latency jumped since new_ranking was enabled",
        "responses got slow after a feature flag was switched on, no errors",
    ],
    "memory-leak": [
        "resident memory keeps climbing until MemoryError",
        "the process grows by megabytes every second and gets close to its memory limit",
    ],
    "dependency-outage": [
        "upstream dependency is down: connection refused",
        "the pricing service we call is unreachable and our requests fail with 502",
    ],
    "traffic-spike": [
        "request rate quadrupled but errors and latency are normal",
        "legitimate surge of users: traffic far above normal while responses stay healthy",
    ],
    "build-oom": [
        "the ci job was OOMKilled with exit code 137 while compiling",
        "webpack ran out of heap memory on the runner during the build",
    ],
    "build-image-pull": [
        "the pipeline could not fetch its docker base image, manifest unknown",
        "registry rate limit: toomanyrequests when pulling the image",
    ],
    "build-dependency-resolution": [
        "npm ERESOLVE could not resolve the dependency tree after the upgrade",
        "pip ResolutionImpossible: conflicting package versions in the lockfile",
    ],
    "build-flaky-test": [
        "a test fails sometimes and passes when we rerun the job",
        "intermittent test failures on a busy ci runner",
    ],
    "build-timeout": [
        "the ci job exceeded its maximum execution time",
        "builds get slower and slower until the job limit kills them",
    ],
    "prometheus-target-down": [
        "prometheus shows up == 0 for our service scrape",
        "scrape failed with connection refused, the exporter target is down",
    ],
    "target-down": [
        "connection refused on the service's health check: the process was killed, nothing listens",
        "the service process is stopped by a signal and hangs, health calls time out on an idle host",
    ],
    "volume-full": [
        "orders fail with 507 insufficient storage, no space left on device",
        "the health check cannot write to its state directory because the volume is full",
    ],
    "host-memory-pressure": [
        "host memory available is low while the service's own memory stays flat",
        "a noisy neighbour process on the host is eating all the memory",
    ],
    "network-latency": [
        "every call to the downstream dependency takes far longer though the network changed, not us",
        "the network path to the dependency got slow, its round trip is up",
    ],
    "host-overload": [
        "the service is slow while every cpu of the host is busy with other work",
        "cpu load above the core count, the service is starved but nothing changed in it",
    ],
    "metrics-endpoint-404": [
        "GET /metrics answers 404 not found on our fastapi app",
        "our fastapi service never mounted the prometheus client: /metrics is not found",
    ],
}


def test_every_builtin_runbook_has_symptom_queries() -> None:
    assert set(SYMPTOM_QUERIES) == {d.id for d in builtin_documents()}


@pytest.mark.parametrize(
    ("expected", "query"), [(doc_id, q) for doc_id, queries in SYMPTOM_QUERIES.items() for q in queries]
)
def test_a_symptom_in_other_words_ranks_its_runbook_first(expected: str, query: str) -> None:
    hits = KnowledgeBase.load().search(query, k=3)
    assert hits and hits[0].document.id == expected, [(h.document.id, h.score) for h in hits]


def test_documents_are_models_with_a_schema_version() -> None:
    assert Document.model_json_schema()["properties"]["schema_version"]["default"] == 1
