"""Optional LLM pass over a deterministic report: it may rewrite the summary and propose hypotheses,
citing the evidence index only. The model never gets the last word, and grounding is enforced here, not
asked for: every sentence of its summary must cite evidence ids of the index (``ev_…``), or it is dropped;
a summary left empty falls back to the rules' summary; a hypothesis must cite only ids of the index. The
report says which parts are the model's (``summary_by``, ``model_sentences``, ``Hypothesis.source``).
Any failure keeps the deterministic report."""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Protocol

from opslab.rca.model import Hypothesis, RcaReport, enforce_citations
from opslab.telemetry import AgentRunIn

log = logging.getLogger("opslab.rca")
_CITED = re.compile(r"\bev_[A-Za-z0-9_.:@-]+")

_SENTENCE = re.compile(r"[^.!?]+(?:[.!?]+(?=\s|$)|$)")
SYSTEM = (
    "You are an SRE analysing a failed AI-agent run. Use ONLY the evidence given. Answer with a JSON object: "
    '{"summary": str, "hypotheses": [{"title": str, "description": str, "evidence_ids": [str], '
    '"confidence": "high"|"medium"|"low", "verification_steps": [str]}]}. Every sentence of the summary '
    "must cite the evidence it rests on by id, in brackets ([ev_tool_c3]); a sentence citing nothing, or "
    "an id not in the evidence_index, is removed. Every hypothesis must cite evidence_ids from the "
    "evidence_index; do not invent ids."
)
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "hypotheses": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "description": {"type": "string"},
                    "evidence_ids": {"type": "array", "items": {"type": "string"}},
                    "confidence": {"enum": ["high", "medium", "low"]},
                    "verification_steps": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["title", "description", "evidence_ids", "confidence"],
            },
        },
    },
    "required": ["summary", "hypotheses"],
}


class Chat(Protocol):
    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float = 0.0,
        json_mode: bool = True,
        schema: dict[str, Any] | None = None,
    ) -> str: ...


class LlmEnhancer:
    def __init__(self, chat: Chat) -> None:
        self.chat = chat

    def __call__(self, run: AgentRunIn, report: RcaReport) -> RcaReport:
        prompt = {
            "run": {
                "run_id": run.run_id,
                "agent": run.agent_name,
                "version": run.agent_version,
                "status": run.status,
                "error_type": run.error_type,
                "error_message": run.error_message,
            },
            "category": report.category,
            "evidence_index": [
                e.model_dump(mode="json", include={"evidence_id", "kind", "title", "snippet", "attributes"})
                for e in report.evidence_index
            ],
            "hypotheses": [h.model_dump(mode="json") for h in report.hypotheses],
        }
        try:
            raw = self.chat.complete(
                [{"role": "system", "content": SYSTEM}, {"role": "user", "content": json.dumps(prompt)}],
                schema=ANSWER_SCHEMA,
            )
            data: Any = json.loads(raw)
            proposed = [Hypothesis.model_validate({**h, "source": "llm"}) for h in data.get("hypotheses", [])]
        except Exception as exc:  # noqa: BLE001 - any failure leaves the deterministic report standing
            log.warning("LLM enhancement skipped: %s", exc)
            return report.model_copy(update={"notes": [*report.notes, f"llm skipped: {type(exc).__name__}"]})
        kept, dropped = enforce_citations(proposed, report.evidence_index)
        known = {h.title.lower() for h in report.hypotheses}
        kept = [h for h in kept if h.title.lower() not in known]
        text = data.get("summary")
        sentences, unsupported = grounded_sentences(text, {e.evidence_id for e in report.evidence_index})
        dropped += unsupported
        notes = [
            *report.notes,
            f"llm: {len(sentences)} summary sentence(s) and {len(kept)} hypothesis(es) kept, "
            f"{dropped} claim(s) dropped for citing no evidence or evidence not in the index",
        ]
        return report.model_copy(
            update={
                "summary": " ".join(sentences) if sentences else report.summary,
                "summary_by": "model" if sentences else "rules",
                "model_sentences": sentences,
                "hypotheses": [*report.hypotheses, *kept],
                "generated_by": "rules+llm",
                "notes": notes,
            }
        )


def grounded_sentences(text: object, known: set[str]) -> tuple[list[str], int]:
    """The sentences of a model's ``text`` that cite evidence ids, all of them in ``known``; and how many
    were dropped (citing nothing, or an id not in the index)."""
    if not isinstance(text, str) or not text.strip():
        return [], 0
    kept, dropped = [], 0
    for match in _SENTENCE.finditer(text):
        sentence = match.group(0).strip()
        if not sentence:
            continue
        cited = {c.rstrip(".:") for c in _CITED.findall(sentence)}  # an id may end the sentence
        if cited and cited <= known:
            kept.append(sentence)
        else:
            dropped += 1
    return kept, dropped
