"""Property tests (hypothesis) for runbook files: a document, or an ``InvalidInput`` naming the file and
the field — never another exception."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opslab.errors import InvalidInput
from opslab.knowledge import Document, parse_document
from tests.conftest import examples

SETTINGS = settings(max_examples=examples(300), deadline=None, suppress_health_check=list(HealthCheck))


yaml_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
front_matter = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=20) | st.integers(),
        "title": yaml_scalars,
        "kind": st.sampled_from(["runbook", "incident", "memo"]) | st.integers(),
        "categories": st.lists(yaml_scalars, max_size=3) | yaml_scalars,
        "symptoms": st.lists(st.text(max_size=15), max_size=3) | yaml_scalars,
        "actions": st.lists(
            st.dictionaries(
                st.sampled_from(["type", "title", "description", "priority", "extra"]),
                yaml_scalars,
                max_size=5,
            ),
            max_size=2,
        ),
        "risk": st.sampled_from(["low", "medium", "high", "extreme"]),
        "schema_version": st.integers(-1, 5) | st.text(max_size=3),
    },
)


@SETTINGS
@given(front_matter, st.text(max_size=200))
def test_a_runbook_file_parses_or_names_its_field(meta: dict[str, Any], body: str) -> None:
    text = "---\n" + yaml.safe_dump(meta, allow_unicode=True) + "---\n" + body
    try:
        doc = parse_document(text, source="fuzz.md")
    except InvalidInput as exc:
        assert exc.message.startswith("fuzz.md")
        return
    assert isinstance(doc, Document) and doc.id and doc.title


@SETTINGS
@given(st.text(max_size=300))
def test_any_text_is_a_runbook_or_a_named_error(text: str) -> None:
    try:
        parse_document(text, source="any.md")
    except InvalidInput as exc:
        assert exc.message.startswith("any.md")
