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
