"""Where knowledge comes from and how a file gets in: a plain Markdown file added whole (one incident per
``##`` section), bad files refused naming them, and the AutoOps seed's ``incidents.md`` read beside the
knowledge folder without ever taking its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from opslab.errors import Conflict, InvalidInput
from opslab.knowledge import SEED_INCIDENTS, KnowledgeBase, add_document, add_documents, builtin_documents

INCIDENTS = """# Build Incidents

## Gradle daemon crash
Error: The Gradle Daemon disappeared unexpectedly (it may have been killed or may have crashed)
Fix: raise org.gradle.jvmargs -Xmx and disable the daemon on CI runners.

## Flux reconcile stuck
Error: kustomization path not found
Fix: check the path in the Kustomization spec.
"""
IDS = ["incidents-gradle-daemon-crash", "incidents-flux-reconcile-stuck"]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- adding a plain file ---------------------------------------------------------------------


def test_a_plain_file_is_added_whole_under_its_name_and_each_section_is_found(tmp_path: Path) -> None:
    folder = tmp_path / "knowledge"
    docs = add_documents(_write(tmp_path / "incidents.md", INCIDENTS), folder)
    assert [d.id for d in docs] == IDS and all(d.path == folder / "incidents.md" for d in docs)
    assert [p.name for p in folder.iterdir()] == ["incidents.md"]  # no temporary file left
    assert (folder / "incidents.md").read_text(encoding="utf-8") == INCIDENTS
    kb = KnowledgeBase.load(folder, files=())
    assert [d.id for d in kb.list(kind="incident")] == IDS and kb.get(IDS[0]) == docs[0]
    assert kb.search("The Gradle Daemon disappeared unexpectedly", k=1)[0].document.id == IDS[0]


def test_a_front_matter_file_is_added_as_before(tmp_path: Path) -> None:
    text = _write(tmp_path / "draft.md", "---\nid: disk-full\ntitle: Disk full\nkind: runbook\n---\nBody.\n")
    (doc,) = add_documents(text, tmp_path / "knowledge")
    assert doc.id == "disk-full" and doc.path == tmp_path / "knowledge" / "disk-full.md"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.md", "", "empty.md: file: empty"),
        ("blank.md", "\ufeff\n   \n", "blank.md: file: empty"),
        ("title.md", "# Build Incidents\n", "title.md: file: no text under its title"),
        ("yaml.md", "---\nid: x\ntitle: [unclosed\n---\n# Body\n", "yaml.md: front_matter: not valid YAML"),
        ("open.md", "---\n# A rule, then prose\n", "open.md: front_matter: the '---' block holds no fields"),
        ("list.md", "---\n- a\n- b\n---\nBody\n", "list.md: front_matter: the '---' block holds no fields"),
    ],
)
def test_a_bad_file_is_refused_naming_it_and_nothing_is_written(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    folder = tmp_path / "knowledge"
    with pytest.raises(InvalidInput) as err:
        add_documents(_write(tmp_path / name, text), folder)
    assert err.value.message.startswith(message) and err.value.details["source"] == name
    assert not folder.exists()


def test_an_undecodable_file_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "latin1.md").write_bytes(b"## Caf\xe9 down\nFix: restart.\n")
    with pytest.raises(InvalidInput, match="latin1.md: file: cannot read"):
        add_documents(tmp_path / "latin1.md", tmp_path / "knowledge")


def test_adding_a_plain_file_twice_is_a_conflict_and_writes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "knowledge"
    source = _write(tmp_path / "incidents.md", INCIDENTS)
    add_documents(source, folder)
    with pytest.raises(Conflict, match="incidents-gradle-daemon-crash"):
        add_documents(source, folder)
    other = _write(tmp_path / "elsewhere" / "incidents.md", "## Another one\nFix: wait.\n")
    with pytest.raises(Conflict, match="incidents.md already exists"):
        add_documents(other, folder)
    assert [p.name for p in folder.iterdir()] == ["incidents.md"]
    assert (folder / "incidents.md").read_text(encoding="utf-8") == INCIDENTS


def test_a_hidden_file_name_is_stored_where_the_loader_reads_it(tmp_path: Path) -> None:
    docs = add_documents(_write(tmp_path / ".incidents.md", INCIDENTS), tmp_path / "knowledge")
    assert docs[0].path == tmp_path / "knowledge" / "incidents.md"
    assert IDS[0] in KnowledgeBase.load(tmp_path / "knowledge", files=())


# --- the AutoOps seed's incidents.md ---------------------------------------------------------


def test_the_seed_file_is_a_default_source_relative_to_the_working_directory() -> None:
    assert Path("agents/responder_agent/knowledge_base/incidents.md") == SEED_INCIDENTS
    assert not SEED_INCIDENTS.is_absolute()


def test_the_seed_file_is_read_when_present_and_not_when_absent(tmp_path: Path) -> None:
    seed = tmp_path / "project" / SEED_INCIDENTS
    assert len(KnowledgeBase.load(tmp_path / "knowledge", files=[seed])) == len(builtin_documents())
    _write(seed, INCIDENTS)
    kb = KnowledgeBase.load(tmp_path / "knowledge", files=[seed])
    assert [d.id for d in kb.list(kind="incident")] == IDS and kb.get(IDS[1]).path == seed
    assert kb.search("kustomization path not found", k=1)[0].document.id == IDS[1]
    assert IDS[0] not in KnowledgeBase.load(tmp_path / "knowledge", files=())


def test_the_knowledge_folder_wins_over_the_seed_file(tmp_path: Path) -> None:
    folder, seed = tmp_path / "knowledge", _write(tmp_path / "project" / SEED_INCIDENTS, INCIDENTS)
    # adding the seed's own file is not refused because the seed file is read too: the copy takes over
    added = add_documents(seed, folder)
    _write(seed, INCIDENTS + "\n## Cache miss storm\nError: cache miss\n")
    kb = KnowledgeBase.load(folder, files=[seed])
    assert [d.id for d in kb.list(kind="incident")] == [*IDS, "incidents-cache-miss-storm"]
    assert kb.get(IDS[0]) == added[0] and kb.get("incidents-cache-miss-storm").path == seed


def test_a_seed_file_inside_a_read_folder_is_read_once(tmp_path: Path) -> None:
    seed = _write(tmp_path / SEED_INCIDENTS, INCIDENTS)
    kb = KnowledgeBase.load(seed.parent, files=[seed])
    assert [d.id for d in kb.list(kind="incident")] == IDS


def test_a_broken_seed_file_is_an_error_naming_it(tmp_path: Path) -> None:
    seed = _write(tmp_path / SEED_INCIDENTS, "---\nid: [x\n---\n")
    with pytest.raises(InvalidInput, match="incidents.md: front_matter"):
        KnowledgeBase.load(None, files=[seed])


def test_adding_a_front_matter_document_ignores_the_seed_file(tmp_path: Path) -> None:
    # add_document's conflict check reads the folder and the built-in runbooks only
    doc = add_document(f"---\nid: {IDS[0]}\ntitle: Gradle\nkind: incident\n---\n", tmp_path / "knowledge")
    _write(tmp_path / SEED_INCIDENTS, INCIDENTS)
    kb = KnowledgeBase.load(tmp_path / "knowledge", files=[tmp_path / SEED_INCIDENTS])
    assert kb.get(IDS[0]).title == doc.title == "Gradle" and IDS[1] in kb
