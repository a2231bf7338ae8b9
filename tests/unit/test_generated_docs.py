"""docs/configuration.md and docs/api.md are what the code renders: a setting or a route added, renamed
or described differently without `make docs` fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from opslab.config import Settings
from opslab.docgen import GENERATED_PAGES, render_api, render_configuration, stale_pages

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("page", sorted(GENERATED_PAGES))
def test_the_committed_page_is_what_the_code_renders(page: str) -> None:
    assert (DOCS / page).read_text(encoding="utf-8") == GENERATED_PAGES[page](), (
        f"docs/{page} is stale: run `make docs`"
    )


def test_every_setting_and_alias_is_on_the_configuration_page() -> None:
    page = render_configuration()
    for name in Settings.model_fields:
        assert f"`OPSLAB_{name.upper()}`" in page
    for seed in ("DATABASE_URL", "REDIS_URL", "APP_INGEST_SECRET", "OPENAI_API_KEY", "LLM_MODEL"):
        assert f"`{seed}`" in page


def test_every_route_of_the_openapi_document_is_on_the_api_page() -> None:
    document = {
        "paths": {
            "/things/{id}": {
                "get": {
                    "tags": ["things"],
                    "summary": "Get Thing",
                    "description": "One ``thing``.\n\nMore detail.",
                    "parameters": [
                        {"name": "id", "in": "path", "required": True},
                        {"name": "full", "in": "query", "required": True},
                    ],
                },
                "post": {
                    "summary": "Post | Thing",
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/c/s/ThingIn"}}}},
                },
            }
        }
    }
    page = render_api(document)
    assert "## things" in page and "## other" in page
    assert "| GET | `/things/{id}` | One `thing`. | `id` (path)<br>`full` (query, required) |  |" in page
    assert "| POST | `/things/{id}` | Post \\| Thing |  | `application/json` ThingIn |" in page


def test_a_stale_page_is_reported(tmp_path: Path) -> None:
    (tmp_path / "configuration.md").write_text("# old\n", encoding="utf-8")
    assert stale_pages(tmp_path) == ["configuration.md", "api.md"]
