"""Plain Markdown knowledge (no front matter), as the AutoOps seed ships its ``incidents.md``: the title from
the first heading, one incident per ``##`` section, its fixes as actions; found by search like any other."""

from __future__ import annotations

from pathlib import Path

import pytest

from opslab.errors import InvalidInput
from opslab.knowledge import KnowledgeBase, parse_plain

SEED_INCIDENTS = """# Incidents

## Out of Memory during Build
Builds die with "Out of memory" on small runners.
Fix: Increase CI runner memory limit to 2-4GB or enable build cache.

## Docker Pull Error
The base image cannot be pulled: manifest unknown, or the registry throttles anonymous pulls.

### How to fix
- Pin the base image by digest
- Pull through a registry mirror

## Prometheus Target Down
Prometheus shows the target as down. Solution: check the scrape port and metrics path.

## FastAPI 404 on /metrics
GET /metrics answers 404: the instrumentation was never mounted.
"""


def test_each_section_is_an_incident_with_its_fixes_as_actions() -> None:
    docs = parse_plain(SEED_INCIDENTS, name="incidents.md")
    assert [d.id for d in docs] == [
        "incidents-out-of-memory-during-build",
        "incidents-docker-pull-error",
        "incidents-prometheus-target-down",
        "incidents-fastapi-404-on-metrics",
    ]
    oom, pull, target, metrics = docs
    assert oom.kind == "incident" and oom.title == "Out of Memory during Build" and not oom.categories
    assert oom.summary == 'Builds die with "Out of memory" on small runners.'
    assert [a.title for a in oom.actions] == [
        "Increase CI runner memory limit to 2-4GB or enable build cache"
    ]
    assert [a.title for a in pull.actions] == [
        "Pin the base image by digest",
        "Pull through a registry mirror",
    ]
    assert [a.priority for a in pull.actions] == ["high", "medium"]
    assert target.summary == "Prometheus shows the target as down."
    assert [a.title for a in target.actions] == ["Check the scrape port and metrics path"]
    assert metrics.actions == [] and metrics.summary.startswith("GET /metrics answers 404")


def test_a_file_without_sections_is_one_document_titled_by_its_heading() -> None:
    (doc,) = parse_plain(
        "# Disk full on runners\n\nNo space left on device.\nFix: prune old images.\n", name="disk.md"
    )
    assert (doc.id, doc.title, doc.summary) == ("disk", "Disk full on runners", "No space left on device.")
    assert [a.title for a in doc.actions] == ["Prune old images"]
    (untitled,) = parse_plain("Just a note.", name="on_call_notes.md")
    assert (untitled.id, untitled.title) == ("on-call-notes", "On call notes")
    assert parse_plain("# Only a title\n", name="empty.md") == []


def test_repeated_headings_get_distinct_ids() -> None:
    docs = parse_plain("## Build OOM\nonce\n## Build OOM\ntwice\n", name="incidents.md")
    assert len({d.id for d in docs}) == 2


def test_a_plain_incidents_file_loads_beside_the_builtin_runbooks_and_is_found(tmp_path: Path) -> None:
    (tmp_path / "incidents.md").write_text(
        "# Incidents\n\n## Build OOM\nBuilds die with Out of memory. "
        "Fix: raise the runner memory to 4GB and enable the build cache.\n"
    )
    kb = KnowledgeBase.load(tmp_path)
    doc = kb.get("incidents-build-oom")  # its own id: the built-in build-oom is not shadowed
    assert kb.get("build-oom").kind == "runbook" and doc.path == tmp_path / "incidents.md"
    assert [a.title for a in doc.actions] == ["Raise the runner memory to 4GB and enable the build cache"]
    hits = kb.search("builds die with out of memory", k=3)
    assert "incidents-build-oom" in [h.document.id for h in hits]


def test_a_file_that_opens_front_matter_is_still_held_to_it(tmp_path: Path) -> None:
    (tmp_path / "broken.md").write_text("---\nid: x\ntitle: [unclosed\n---\n# Body\n")
    with pytest.raises(InvalidInput, match="broken.md: front_matter"):
        KnowledgeBase.load(tmp_path)


# --- the shapes a plain file comes in ----------------------------------------------------------------

BUILD_INCIDENTS = """# Build Incidents

## Gradle daemon crash
Error: The Gradle Daemon disappeared unexpectedly (it may have been killed or may have crashed)
Fix: raise org.gradle.jvmargs -Xmx and disable the daemon on CI runners.

## Flux reconcile stuck
Error: kustomization path not found
Fix: check the path in the Kustomization spec.
"""


def test_error_and_fix_lines_become_signal_summary_and_advice_never_a_remediation() -> None:
    gradle, flux = parse_plain(BUILD_INCIDENTS, name="incidents.md")
    assert (gradle.id, gradle.title, gradle.kind) == (
        "incidents-gradle-daemon-crash",
        "Gradle daemon crash",
        "incident",
    )
    daemon = "The Gradle Daemon disappeared unexpectedly (it may have been killed or may have crashed)"
    assert gradle.signals == [daemon] and gradle.summary == daemon
    assert [(a.type, a.priority, a.description) for a in gradle.actions] == [
        ("process", "high", "Raise org.gradle.jvmargs -Xmx and disable the daemon on CI runners")
    ]
    assert gradle.remediation == [] and flux.remediation == []  # free text never becomes a typed action
    assert gradle.body.startswith("Error: The Gradle Daemon") and "Fix: raise" in gradle.body
    assert (flux.signals, flux.summary) == (["kustomization path not found"], "kustomization path not found")
    assert [a.title for a in flux.actions] == ["Check the path in the Kustomization spec"]


def test_symptom_and_resolution_labels_in_their_usual_spellings() -> None:
    (doc,) = parse_plain(
        "## Runner disk full\n"
        "The runners stop taking jobs.\n\n"
        "**Symptoms:**\n"
        "- jobs queue for hours\n"
        "- `df` shows 100 %\n\n"
        "### Error\n"
        "- No space left on device\n\n"
        "Exception: java.io.IOException: No space left on device\n"
        "**Resolution:** prune docker images nightly.\n"
        "Workaround: restart the runner.\n",
        name="runners.md",
    )
    assert doc.summary == "The runners stop taking jobs."
    assert doc.symptoms == ["jobs queue for hours", "df shows 100 %"]
    assert doc.signals == ["No space left on device", "java.io.IOException: No space left on device"]
    assert [a.title for a in doc.actions] == ["Prune docker images nightly", "Restart the runner"]
    (one_line,) = parse_plain("## Y\nError: exit code 137. Fix: raise the memory limit.\n", name="n.md")
    assert one_line.signals == ["exit code 137."] and one_line.summary == "exit code 137."
    assert [a.title for a in one_line.actions] == ["Raise the memory limit"]
    # a word that only starts like a label is prose, not a signal
    (note,) = parse_plain("## X\nError handling in the uploader drops retries.\n", name="n.md")
    assert note.signals == [] and note.summary == "Error handling in the uploader drops retries."


def test_unicode_headings_keep_their_title_and_get_an_ascii_id() -> None:
    docs = parse_plain(
        "# Störungen\n\n## Störung im Build\ntext\n## 构建失败\n内存不足\n## Ünïcödé ✓ OK\nmore\n",
        name="Störungen.md",
    )
    assert [d.id for d in docs] == ["storungen-storung-im-build", "storungen-2", "storungen-unicode-ok"]
    assert [d.title for d in docs] == ["Störung im Build", "构建失败", "Ünïcödé ✓ OK"]
    assert docs[1].summary == "内存不足"
    (untitled,) = parse_plain("内存不足\n", name="构建.md")
    assert (untitled.id, untitled.title) == ("notes", "构建")


def test_repeated_headings_are_numbered_even_when_a_number_is_taken() -> None:
    docs = parse_plain(
        "## Build OOM\na\n## Build OOM 2\nb\n## Build OOM\nc\n## Build OOM\nd\n", name="incidents.md"
    )
    assert [d.id for d in docs] == [
        "incidents-build-oom",
        "incidents-build-oom-2",
        "incidents-build-oom-3",
        "incidents-build-oom-4",
    ]


def test_headings_and_labels_inside_code_blocks_are_text() -> None:
    (doc,) = parse_plain(
        "```bash\n# not the title\n## not a section\nFix: not advice\n```\n"
        "Builds hang on the lock file.\nFix: delete the stale lock.\n",
        name="lock.md",
    )
    assert (doc.id, doc.title) == ("lock", "Lock")
    assert [a.title for a in doc.actions] == ["Delete the stale lock"]
    assert "## not a section" in doc.body and doc.summary == "Builds hang on the lock file."


def test_a_huge_file_keeps_ids_titles_and_labels_within_their_bounds() -> None:
    heading, error = "Build fails " * 40, "E" * 50_000  # a 480-character heading, a 50 kB error line
    docs = parse_plain(f"## {heading}\nError: {error}\n{'word ' * 10_000}\nFix: retry.\n" * 3, name="i.md")
    assert len({d.id for d in docs}) == 3 and all(len(d.id) <= 100 for d in docs)
    assert docs[1].id.endswith("-2") and docs[2].id.endswith("-3")
    assert all(len(d.title) == 200 and len(d.signals[0]) == 500 and len(d.summary) <= 2_000 for d in docs)
    assert error in docs[0].body  # the body, what search reads, stays whole
    many = parse_plain(
        "## Build fails in the same way, again and again, on every runner\nx\n" * 10_005, name="i.md"
    )
    assert len({d.id for d in many}) == 10_005 and many[-1].id.endswith("-10005")
    assert max(len(d.id) for d in many) <= 100


def test_a_file_with_only_a_title_or_nothing_has_no_documents() -> None:
    assert parse_plain("", name="incidents.md") == []
    assert parse_plain("\ufeff\n  \n", name="incidents.md") == []
    assert parse_plain("# Build Incidents\n\n", name="incidents.md") == []
