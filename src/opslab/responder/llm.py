"""The optional LLM pass over the rules' diagnosis, under the RCA's discipline: the model sees the
evidence index and the candidate runbooks and may answer with a diagnosis; it is taken only when it
cites at least one evidence id, every id it cites (in the list or in its text) exists, and it names a
runbook that exists and covers its category. Anything else, or any failure, keeps the rules' answer.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from opslab.knowledge import Hit, KnowledgeBase
from opslab.responder.model import CATEGORIES, Diagnosis, Evidence
from opslab.responder.ports import Chat

log = logging.getLogger("opslab.responder")
_CITED = re.compile(r"\b(?:obs|log|trend):[A-Za-z0-9_.\-]+")

SYSTEM = (
    "You are an SRE diagnosing a production incident from symptoms only. Use ONLY the evidence given. "
    'Answer with a JSON object: {"category": one of ' + json.dumps(list(CATEGORIES)) + ", "
    '"summary": str, "root_cause": str, "evidence_ids": [str], "runbook_id": str, "confidence": number 0-1}. '
    "Cite evidence_ids from the evidence_index and a runbook_id from the runbooks; do not invent ids."
)


def llm_diagnosis(
    chat: Chat, rules: Diagnosis, evidence: Sequence[Evidence], hits: Sequence[Hit], knowledge: KnowledgeBase
) -> Diagnosis:
    runbooks = {d.id: d for d in knowledge.list(kind="runbook")}
    prompt = {
        "evidence_index": [e.model_dump(mode="json") for e in evidence],
        "rules_diagnosis": rules.model_dump(mode="json", include={"category", "summary", "confidence"}),
        "runbooks": [
            {"id": d.id, "title": d.title, "categories": d.categories, "summary": d.summary}
            for d in runbooks.values()
            if set(d.categories) & set(CATEGORIES)
        ],
        "similar_documents": [
            {"id": h.document.id, "kind": h.document.kind, "snippet": h.snippet} for h in hits
        ],
    }
    try:
        raw = chat.complete(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": json.dumps(prompt)}]
        )
        data: Any = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except Exception as exc:  # noqa: BLE001 - any failure leaves the rules' diagnosis standing
        log.warning("LLM diagnosis skipped: %s", exc)
        return rules.model_copy(update={"notes": [*rules.notes, f"llm skipped: {type(exc).__name__}"]})
    problem = _citation_problem(data, {e.evidence_id for e in evidence}, runbooks)
    if problem:
        return rules.model_copy(update={"notes": [*rules.notes, f"llm answer dropped: {problem}"]})
    category = data["category"]
    llm_conf = data.get("confidence")
    conf = float(llm_conf) if isinstance(llm_conf, int | float) and 0 <= llm_conf <= 1 else rules.confidence
    if category != rules.category:  # the model may overrule the rules, never with more certainty than both
        conf = min(conf, rules.confidence)
    return Diagnosis(
        category=category,
        summary=str(data.get("summary") or rules.summary),
        confidence=round((conf + rules.confidence) / 2, 3),
        root_cause=str(data.get("root_cause") or ""),
        evidence_ids=list(dict.fromkeys(data["evidence_ids"])),
        runbook_id=data["runbook_id"],
        similar_incidents=rules.similar_incidents,
        source="llm",
        notes=[*rules.notes, "llm diagnosis accepted"],
    )


def _citation_problem(data: dict[str, Any], known: set[str], runbooks: dict[str, Any]) -> str | None:
    category = data.get("category")
    if category not in CATEGORIES:
        return f"unknown category {category!r}"
    ids = data.get("evidence_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        return "no evidence ids cited"
    text = f"{data.get('summary', '')} {data.get('root_cause', '')}"
    in_text = [m.rstrip(".-") for m in _CITED.findall(text)]
    unknown = sorted({*ids, *in_text} - known)
    if unknown:
        return f"cites unknown evidence {unknown}"
    runbook = runbooks.get(str(data.get("runbook_id")))
    if runbook is None:
        return f"cites unknown runbook {data.get('runbook_id')!r}"
    if category not in runbook.categories:
        return f"runbook {runbook.id} does not cover {category}"
    return None
