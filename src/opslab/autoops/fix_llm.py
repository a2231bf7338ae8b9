"""The fix responder's optional LLM step: the model phrases the retrieved runbook's fix for this error.

It answers ``{"suggestion", "document_id", "actions"}``. The answer is dropped when it cites another
document, fails or is not JSON; refused (dropped, and listed in ``refused``) when any of it is destructive.
Otherwise each step is held to the runbook (``grounding.ground``): a step that comes from a runbook action
replaces that action's words; a step that does not is kept below the runbook's, flagged "not from the
runbook". The suggestion is the model's only when every sentence of it comes from the runbook; else the
runbook's first action stands and ``source`` stays ``knowledge``.
"""

from __future__ import annotations

import json
import logging

from opslab.autoops.grounding import NOT_FROM_RUNBOOK, destructive, ground, sentences
from opslab.autoops.suggestion import Chat, FixAction, FixSuggestion, RefusedAdvice
from opslab.knowledge import Document

log = logging.getLogger("opslab.autoops")
MAX_STEPS = 8


def phrase_with_llm(chat: Chat, error: str, doc: Document, found: FixSuggestion) -> FixSuggestion:
    answer = _ask(chat, error, doc)
    if answer is None:
        return found
    text, steps = answer
    refused = [
        RefusedAdvice(text=part[:500], reason=reason)
        for part in [text, *steps]
        if (reason := destructive(part)) is not None
    ]
    if refused:
        log.warning("LLM fix refused for %s: %s", doc.id, ", ".join(r.reason for r in refused))
        return found.model_copy(update={"refused": refused})
    phrased: dict[str, str] = {}  # runbook action title -> the model's words for it
    own: list[FixAction] = []
    for step in steps or sentences(text):
        grounding = ground(step, doc.actions)
        if grounding.action is None:
            own.append(FixAction(text=step, from_runbook=False, note=NOT_FROM_RUNBOOK))
        else:
            phrased.setdefault(grounding.action.title, step)
    actions = [
        FixAction(text=phrased.get(a.title, a.title), from_runbook=True, runbook_action=a.title)
        for a in doc.actions
    ]
    grounded = bool(text) and all(ground(s, doc.actions).action is not None for s in sentences(text))
    update: dict[str, object] = {"actions": [*actions, *own]}
    if grounded:
        update |= {"suggestion": text, "source": "llm"}
    return found.model_copy(update=update)


def _ask(chat: Chat, error: str, doc: Document) -> tuple[str, list[str]] | None:
    """The model's suggestion and steps, or ``None`` when its answer does not count."""
    steps = "\n".join(f"{i}. {a.title}: {a.description}" for i, a in enumerate(doc.actions, start=1))
    messages = [
        {
            "role": "system",
            "content": "You help CI engineers fix failed builds. Answer JSON "
            '{"suggestion": "<one or two sentences>", "document_id": "<the id of the runbook you used>", '
            '"actions": ["<one step per item, best first>"]}. Use only the runbook\'s actions, in your own '
            "words for this error; add nothing else; cite the runbook's id.",
        },
        {
            "role": "user",
            "content": f"Build error:\n{error[:4000]}\n\n"
            f"Runbook {doc.id} ({doc.title}):\n{steps or doc.summary}",
        },
    ]
    try:
        answer = json.loads(chat.complete(messages))
    except Exception as exc:  # noqa: BLE001 - a model that fails or rambles leaves the runbook's words
        log.warning("LLM suggestion dropped: %s", exc)
        return None
    if not isinstance(answer, dict) or answer.get("document_id") != doc.id:
        return None  # uncited (or citing something else): dropped
    text = answer.get("suggestion")
    text = text.strip()[:1000] if isinstance(text, str) else ""
    raw = answer.get("actions")
    steps_out = (
        [s.strip()[:500] for s in raw if isinstance(s, str) and s.strip()] if isinstance(raw, list) else []
    )
    if not text and not steps_out:
        return None
    return text, steps_out[:MAX_STEPS]
