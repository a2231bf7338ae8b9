"""A knowledge document: Markdown with YAML front matter, parsed into a typed ``Document``.

    ---
    schema_version: 1
    id: tool-schema-mismatch
    title: Tool Schema Mismatch Root Cause
    kind: runbook
    categories: [tool_schema_mismatch]
    symptoms: ["tool call returns 422"]
    actions:
      - {type: code_change, title: ..., description: ..., priority: high}
    ---
    # Prose for the person on call ...

The front matter is validated strictly (unknown keys are refused), so a typo is an
``InvalidInput`` naming the field and the file rather than a runbook that silently lacks it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import frontmatter
import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from opslab.errors import InvalidInput, invalid_from_pydantic

DOCUMENT_SCHEMA_VERSION = 1
SLUG = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
# Filled in by the loader, never by the author: front matter naming them is refused.
_RESERVED = ("body", "path")

DocumentKind = Literal["runbook", "incident"]
ActionType = Literal["code_change", "config_change", "monitoring", "process", "investigation"]
Priority = Literal["high", "medium", "low"]
Risk = Literal["low", "medium", "high"]


class RunbookAction(BaseModel):
    """One remediation step; ``type`` and ``priority`` are the RCA's ``ActionItem`` sets."""

    model_config = ConfigDict(extra="forbid")

    type: ActionType
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1)
    priority: Priority


class Remediation(BaseModel):
    """One typed action an automated responder may call for this failure: an action server's action
    ``name`` with its ``params``, and the ``risk`` of running it. Listed in order of preference."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    params: dict[str, JsonValue] = Field(default_factory=dict)
    risk: Risk = "low"
    description: str = ""


class Document(BaseModel):
    """A runbook (how to confirm and fix a kind of failure) or a past incident (what happened once)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = DOCUMENT_SCHEMA_VERSION
    id: str = Field(min_length=1, max_length=100, description="Slug: lowercase letters, digits, - and _.")
    title: str = Field(min_length=1, max_length=200)
    kind: DocumentKind
    summary: str = Field("", description="One paragraph: what this failure is (an RCA hypothesis's text).")
    categories: list[str] = Field(default_factory=list, description="RCA categories this document covers.")
    tags: list[str] = Field(default_factory=list)
    symptoms: list[str] = Field(default_factory=list, description="What a user or an alert sees.")
    signals: list[str] = Field(default_factory=list, description="Telemetry that shows it: codes, errors.")
    verification_steps: list[str] = Field(default_factory=list)
    actions: list[RunbookAction] = Field(default_factory=list)
    remediation: list[Remediation] = Field(
        default_factory=list, description="Typed actions for the responder, in order of preference."
    )
    risk: Risk = Field("low", description="Risk of applying the actions.")
    body: str = Field("", description="The Markdown text after the front matter.")
    path: Path | None = Field(None, description="Where the document was read from.")

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != DOCUMENT_SCHEMA_VERSION:
            raise ValueError(f"unsupported version {value}; this opslab reads {DOCUMENT_SCHEMA_VERSION}")
        return value

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError("must be a slug: lowercase letters and digits joined by - or _")
        return value

    @field_validator("categories", "tags")
    @classmethod
    def _clean_labels(cls, values: list[str]) -> list[str]:
        cleaned = [v.strip() for v in values]
        if any(not v for v in cleaned):
            raise ValueError("labels must not be empty")
        return cleaned

    def searchable_text(self) -> str:
        """What retrieval indexes; the short, dense fields count twice against the long body."""
        labels = " ".join(c.replace("_", " ") for c in [*self.categories, *self.tags])
        dense = "\n".join([self.title, *self.symptoms, *self.signals, labels])
        return "\n".join([dense, dense, self.summary, self.body])


def parse_document(text: str, *, source: str = "<text>", path: Path | None = None) -> Document:
    """Parse Markdown with front matter; a problem is an ``InvalidInput`` naming ``source`` and the field."""
    try:
        metadata, content = frontmatter.parse(text)
    except yaml.YAMLError as exc:
        raise invalid(source, "front_matter", f"not valid YAML ({_first_line(exc)})") from None
    if not metadata:
        if text.lstrip("\ufeff").lstrip().startswith("---"):
            # frontmatter reads an unclosed block, an empty one or a YAML list alike as "no metadata"
            raise invalid(
                source,
                "front_matter",
                "the '---' block holds no fields: close it with a second '---' line and write `key: value` "
                "lines (id, title, kind) in it, or do not start a plain Markdown file with '---'",
            )
        raise invalid(source, "front_matter", "missing: start the file with a '---' YAML block")
    for key in _RESERVED:
        if key in metadata:
            raise invalid(source, key, "set by opslab from the file, not in front matter")
    try:
        return Document.model_validate({**metadata, "body": content, "path": path})
    except ValidationError as exc:
        err = invalid_from_pydantic(exc.errors(include_url=False))
        raise InvalidInput(f"{source}: {err.message}", details={**err.details, "source": source}) from None


def read_document(path: Path) -> Document:
    """A document from a file, named by its file name in any error."""
    return parse_document(read_text(path), source=path.name, path=path)


def read_text(path: Path) -> str:
    """A file's UTF-8 text; unreadable or undecodable is ``InvalidInput`` naming the file."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise invalid(str(path), "file", f"cannot read ({exc})") from None


def invalid(source: str, field: str, message: str) -> InvalidInput:
    """``InvalidInput`` naming the file (``source``) and the field: ``incidents.md: file: empty``."""
    return InvalidInput(
        f"{source}: {field}: {message}",
        details={"errors": [{"field": field, "message": message}], "source": source},
    )


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
