"""``docs/api.md`` from the service's OpenAPI document: routes grouped by tag with method, path, summary,
parameters and body."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opslab.api import create_app
from opslab.config import Settings

METHODS = ("get", "post", "put", "patch", "delete")

INTRO = """\
# HTTP API

<!-- Generated from the service's OpenAPI document by `make docs` (python -m opslab.docgen): edit the
routes' summaries and docstrings, not this page. A test fails when they differ. -->

`opslab serve` answers on `http://127.0.0.1:8000` by default. The running service also serves this
document as OpenAPI at `/openapi.json`, browsable at `/docs`. Every route but ingestion, `/` and
`/healthz` needs `Authorization: Bearer $OPSLAB_API_TOKEN` once a token is set; ingestion needs
`X-Ingest-Secret` once `OPSLAB_INGEST_SECRET` is set ([security.md](security.md)). Errors are one JSON
shape, `{"error": {"code", "message", "details"}}`. A job's progress streams as server-sent events
(the `/stream` routes). The typed Python client is `opslab.client`; the CLI's `--url` options use it.
"""


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of a service built on defaults (nothing read from the environment)."""
    with tempfile.TemporaryDirectory(prefix="opslab-docgen-") as tmp:
        app = create_app(Settings.model_construct(data_dir=Path(tmp)), migrate=False)
        try:
            return app.openapi()
        finally:
            app.state.runtime.close()


def render_api(document: Mapping[str, Any] | None = None) -> str:
    doc = document if document is not None else openapi_document()
    by_tag: dict[str, list[str]] = {}
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            tag = (op.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append(_row(method, path, op))
    sections = [INTRO]
    for tag, rows in by_tag.items():
        sections += [
            f"## {tag}",
            "",
            "| method | path | what it does | parameters | body |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    return "\n".join(sections)


def _row(method: str, path: str, op: Mapping[str, Any]) -> str:
    summary = _cell(_first_paragraph(op.get("description") or "") or op.get("summary") or "")
    params = "<br>".join(_parameter(p) for p in op.get("parameters", []))
    return f"| {method.upper()} | `{path}` | {summary} | {params} | {_body(op.get('requestBody'))} |"


def _parameter(param: Mapping[str, Any]) -> str:
    where = param.get("in", "")
    flags = where + (", required" if param.get("required") and where != "path" else "")
    return f"`{param.get('name')}` ({flags})"


def _body(body: Mapping[str, Any] | None) -> str:
    if not body:
        return ""
    parts = []
    for content_type, media in body.get("content", {}).items():
        schema = media.get("schema", {})
        ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
        name = ref.rsplit("/", 1)[-1] if isinstance(ref, str) else schema.get("type", "")
        parts.append(f"`{content_type}`" + (f" {name}" if name else ""))
    return "<br>".join(parts)


def _first_paragraph(text: str) -> str:
    return " ".join(text.strip().split("\n\n", 1)[0].split()).replace("``", "`")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
