"""What the fix responder takes and answers: a failed build's error (the monitor's own output accepted as
it is) and a suggestion citing its document, with its steps and any advice refused; the model port."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from opslab.autoops.model import BuildConfig, BuildContext, ErrorClass


class FixRequest(BaseModel):
    """A failed build's error. The monitor's own answer is accepted as it is — the seed's
    ``{"status", "duration", "error"}`` as well as ``POST /simulate_build``'s — its other fields are not
    used to find the fix."""

    model_config = ConfigDict(extra="forbid", strict=True)

    error: str | None = Field(
        None,
        min_length=1,
        max_length=20_000,
        description="The build's error text (needed unless it succeeded).",
    )
    status: Literal["failed", "success"] | None = None
    error_class: ErrorClass | None = None
    logs: list[str] = Field(default_factory=list, max_length=200)
    duration: float | None = Field(None, ge=0, le=7 * 24 * 3600, description="Seconds (the monitor's).")
    build_id: str | None = Field(None, max_length=100, description="The monitor's build id.")
    action_id: int | None = Field(None, ge=0, description="The catalog action the build ran with.")
    config: BuildConfig | None = None
    context: BuildContext | None = None


class FixAction(BaseModel):
    text: str
    from_runbook: bool = Field(description="The step is one of the cited document's actions.")
    runbook_action: str | None = Field(None, description="The title of the runbook action it comes from.")
    note: str | None = Field(None, description='"not from the runbook" for a model\'s step of its own.')


class RefusedAdvice(BaseModel):
    text: str
    reason: str = Field(description="Why it was refused, e.g. force-push.")


FixOutcome = Literal["fix", "no_known_fix", "nothing_to_fix"]


class NearestDocument(BaseModel):
    """The document retrieval matched best when it did not match well enough for its fix to be offered:
    context for the person the failure is escalated to, not a fix."""

    document_id: str
    title: str
    score: float = Field(description="Its retrieval score (BM25).")
    confidence: float = Field(
        ge=0, le=1, description="How surely it covers the error (below min_confidence)."
    )
    min_confidence: float = Field(ge=0, le=1, description="The confidence a document's fix needs.")


class FixSuggestion(BaseModel):
    suggestion: str
    document_id: str | None = Field(description="The runbook or incident the suggestion comes from.")
    score: float = Field(description="Retrieval score of that document (BM25; 0 when none).")
    outcome: FixOutcome = Field(
        "fix",
        description='"fix" (from document_id), "no_known_fix" (nothing matches well enough: see nearest) or '
        '"nothing_to_fix" (the build succeeded).',
    )
    confidence: float | None = Field(
        None,
        ge=0,
        le=1,
        description="How surely document_id covers this error: 1 when the error names the failure it is "
        "about (or its error_class does), else retrieval's weight on it among every document.",
    )
    nearest: NearestDocument | None = Field(
        None, description="With no known fix: the closest document and its score, as context (not a fix)."
    )
    config_change: dict[str, JsonValue] | None = Field(
        None, description="Build settings the document recommends (a prior for the optimizer)."
    )
    source: Literal["knowledge", "llm", "none"]
    actions: list[FixAction] = Field(
        default_factory=list,
        description="The steps, best first: the runbook's (as the model phrased them, if one did), then any "
        "step of the model's own, flagged.",
    )
    refused: list[RefusedAdvice] = Field(
        default_factory=list, description="A model's advice refused as destructive (its answer was dropped)."
    )


class Chat(Protocol):
    def complete(
        self, messages: list[dict[str, str]], *, temperature: float = 0.0, json_mode: bool = True
    ) -> str: ...
