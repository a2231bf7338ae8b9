"""Optional LLM pass over a deterministic report: it may rewrite the summary and propose hypotheses,
citing the evidence index only. Uncited or wrongly cited claims are dropped; any failure keeps the
deterministic report. The model never gets the last word."""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Protocol

from opslab.rca.model import Hypothesis, RcaReport, enforce_citations
from opslab.telemetry import AgentRunIn

log = logging.getLogger("opslab.rca")
_CITED = re.compile(r"\bev_[A-Za-z0-9_.:@-]+")

SYSTEM = (
    "You are an SRE analysing a failed AI-agent run. Use ONLY the evidence given. Answer with a JSON object: "
    '{"summary": str, "hypotheses": [{"title": str, "description": str, "evidence_ids": [str], '
    '"confidence": "high"|"medium"|"low", "verification_steps": [str]}]}. Every hypothesis must cite '
    "evidence_ids from the evidence_index; do not invent ids."
)


class Chat(Protocol):
    def complete(
        self, messages: list[dict[str, str]], *, temperature: float = 0.0, json_mode: bool = True
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
                [{"role": "system", "content": SYSTEM}, {"role": "user", "content": json.dumps(prompt)}]
            )
            data: Any = json.loads(raw)
            proposed = [Hypothesis.model_validate({**h, "source": "llm"}) for h in data.get("hypotheses", [])]
        except Exception as exc:  # noqa: BLE001 - any failure leaves the deterministic report standing
            log.warning("LLM enhancement skipped: %s", exc)
            return report.model_copy(update={"notes": [*report.notes, f"llm skipped: {type(exc).__name__}"]})
        kept, dropped = enforce_citations(proposed, report.evidence_index)
        known = {h.title.lower() for h in report.hypotheses}
        kept = [h for h in kept if h.title.lower() not in known]
        summary = report.summary
        text = data.get("summary")
        known_ids = {e.evidence_id for e in report.evidence_index}
        if isinstance(text, str) and text.strip() and set(_CITED.findall(text)) <= known_ids:
            summary = text.strip()
        elif isinstance(text, str) and text.strip():
            dropped += 1
        notes = [
            *report.notes,
            f"llm: {len(kept)} hypothesis(es) added, {dropped} claim(s) dropped for bad citations",
        ]
        return report.model_copy(
            update={
                "summary": summary,
                "hypotheses": [*report.hypotheses, *kept],
                "generated_by": "rules+llm",
                "notes": notes,
            }
        )
