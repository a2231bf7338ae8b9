"""LLM mode for transcripts: a chat model names the decisive step and agent, with the deterministic
ranking as its prior, under the citation rule.

Three strategies, as in the literature on failure attribution in multi-agent logs:

- ``all_at_once`` — one prompt with the whole transcript (turns clipped to fit) and the prior;
- ``step_by_step`` — the prior's most probable turns, in the order they happened, each asked about
  with the log up to it; the first one the model calls decisive wins;
- ``binary_search`` — the model says which half of a span of the log holds the decisive step, until
  the span is a few turns long; then one all-at-once question on that span.

Every turn is offered as an evidence id (``ev_turn_<step_id>``) beside the report's evidence index.
An answer stands only if it cites an id on the step it names (a step without one is dropped) and its
agent is that step's author or backed by a cited item (otherwise the author is kept). Any failure of
the model, or an answer that does not stand, leaves the deterministic report as it was.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

from opslab.rca.features import failing_turns, owners
from opslab.rca.llm import Chat, grounded_sentences
from opslab.rca.model import Alternative, Confidence, Evidence, Hypothesis, RcaReport
from opslab.rca.signals import detect
from opslab.rca.transcript import Transcript, Turn, agent_key, is_transcript, read_transcript
from opslab.telemetry import AgentRunIn

log = logging.getLogger("opslab.rca")
Strategy = Literal["all_at_once", "step_by_step", "binary_search"]
STRATEGIES: tuple[Strategy, ...] = ("all_at_once", "step_by_step", "binary_search")
PROMPT_CHARS = 60_000  # the transcript's share of a prompt
WINDOW = 4  # binary search stops at a span this short
_RULES = (
    "The decisive step is the earliest step after which the failure was inevitable: not the loudest "
    "error, not an error the run recovered from. An instruction that sent a worker the wrong way is "
    "decisive, not the worker's failure that followed. Cite evidence ids from `steps` (ev_turn_…) or "
    "`evidence_index` only; an answer whose step is not backed by a cited id on that step is discarded."
)
ANSWER = (
    'Answer with a JSON object: {"step": int, "agent": str, "evidence_ids": [str], "reason": str, '
    '"confidence": "high"|"medium"|"low"}.'
)
SYSTEM = {
    "all_at_once": f"You find where a failed multi-agent run went wrong. {_RULES} {ANSWER}",
    "step_by_step": (
        f"You review a failed multi-agent run one step at a time. {_RULES} Say whether the step under "
        'review is the decisive one. Answer with a JSON object: {"decisive": bool, "agent": str, '
        '"evidence_ids": [str], "reason": str, "confidence": "high"|"medium"|"low"}.'
    ),
    "binary_search": (
        f"You narrow down where a failed multi-agent run went wrong. {_RULES} Say which half of the span "
        'holds the decisive step. Answer with a JSON object: {"half": "first"|"second", "reason": str}.'
    ),
}


@dataclass
class Answer:
    step: int
    agent: str | None
    evidence_ids: list[str]
    reason: str
    confidence: Confidence


def turn_id(t: Turn) -> str:
    return f"ev_turn_{t.step_id}"


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    half = max(1, limit // 2 - 2)
    return f"{text[:half]} … {text[-half:]}"


class LlmLocalizer:
    """An ``Enhancer``: transcript reports get the model's decisive step and agent, when they stand."""

    def __init__(self, chat: Chat, strategy: Strategy = "all_at_once", *, max_calls: int = 12) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
        self.chat, self.strategy, self.max_calls = chat, strategy, max_calls

    def __call__(self, run: AgentRunIn, report: RcaReport) -> RcaReport:
        if report.root_cause_step is None or report.insufficient_evidence or not is_transcript(run):
            return report
        tr = read_transcript(run)
        try:
            answer, calls = self._ask(tr, report)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the deterministic report standing
            log.warning("LLM localisation skipped: %s", exc)
            return _noted(report, f"llm {self.strategy} skipped: {type(exc).__name__}")
        if answer is None:
            return _noted(report, f"llm {self.strategy}: no step named in {calls} call(s); rules kept")
        return self._merge(tr, report, answer, calls)

    # The strategies -------------------------------------------------------------------------------

    def _ask(self, tr: Transcript, report: RcaReport) -> tuple[Answer | None, int]:
        turns = tr.turns
        if self.strategy == "all_at_once":
            return self._final(tr, report, turns, "the whole run"), 1
        if self.strategy == "step_by_step":
            return self._step_by_step(tr, report)
        return self._binary_search(tr, report)

    def _final(self, tr: Transcript, report: RcaReport, span: list[Turn], what: str) -> Answer | None:
        data = self._complete(
            "all_at_once", self._prompt(tr, report, span, question=f"Within {what}: {ANSWER}")
        )
        return _answer(data)

    def _step_by_step(self, tr: Transcript, report: RcaReport) -> tuple[Answer | None, int]:
        by_step = {t.n: t for t in tr.turns}
        ranked = [report.root_cause_step, *(a.step for a in report.alternatives)]
        order = sorted({n for n in ranked if n in by_step})[: self.max_calls]
        calls = 0
        for n in order:
            calls += 1
            t = by_step[n]
            upto = [u for u in tr.turns if u.n <= n]
            data = self._complete(
                "step_by_step",
                self._prompt(tr, report, upto, question=f"Is step {n} ({turn_id(t)}) the decisive step?"),
            )
            if data.get("decisive") is True:
                return _answer({**data, "step": n}), calls
        return None, calls

    def _binary_search(self, tr: Transcript, report: RcaReport) -> tuple[Answer | None, int]:
        span = [t for t in tr.turns if t.role != "system"]
        calls = 0
        while len(span) > WINDOW and calls < self.max_calls - 1:
            mid = len(span) // 2
            first, second = span[:mid], span[mid:]
            question = (
                f"First half: steps {first[0].n}-{first[-1].n}; second half: steps {second[0].n}-"
                f"{second[-1].n}. Which half holds the decisive step?"
            )
            data = self._complete("binary_search", self._prompt(tr, report, span, question=question))
            calls += 1
            half = str(data.get("half", "")).lower()
            if half not in ("first", "second"):
                raise ValueError(f"binary search answer without a half: {data!r}")
            span = first if half == "first" else second
        return self._final(tr, report, span, f"steps {span[0].n}-{span[-1].n}"), calls + 1

    # Prompts and answers --------------------------------------------------------------------------

    def _prompt(
        self, tr: Transcript, report: RcaReport, span: list[Turn], *, question: str
    ) -> dict[str, Any]:
        limit = max(160, PROMPT_CHARS // max(1, len(span)))
        prior = [
            {"step": report.root_cause_step, "agent": report.responsible_agent, "p": report.step_probability},
            *({"step": a.step, "agent": a.agent, "p": a.probability} for a in report.alternatives),
        ]
        in_span = {t.step_id for t in span}
        return {
            "task": str(tr.turns[0].text)[:2000] if tr.turns else "",
            "steps": [
                {
                    "step": t.n,
                    "id": turn_id(t),
                    "agent": t.agent,
                    "role": t.role,
                    "text": _clip(t.text, limit),
                }
                for t in span
            ],
            "prior": prior,
            "evidence_index": [
                {"evidence_id": e.evidence_id, "step_id": e.step_id, "title": e.title}
                for e in report.evidence_index
                if e.step_id is None or e.step_id in in_span
            ],
            "question": question,
        }

    def _complete(self, strategy: Strategy, prompt: dict[str, Any]) -> dict[str, Any]:
        raw = self.chat.complete(
            [{"role": "system", "content": SYSTEM[strategy]}, {"role": "user", "content": json.dumps(prompt)}]
        )
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("the model's answer is not a JSON object")
        return data

    def _merge(self, tr: Transcript, report: RcaReport, a: Answer, calls: int) -> RcaReport:
        turns = {t.n: t for t in tr.turns}
        t = turns.get(a.step)
        known = {e.evidence_id: e for e in report.evidence_index}
        offered = {turn_id(u): u for u in tr.turns}
        cited = [i for i in dict.fromkeys(a.evidence_ids) if i in known or i in offered]
        bad = len(set(a.evidence_ids)) - len(cited)
        on_step = t is not None and any(
            (i in offered and offered[i] is t) or (i in known and known[i].step_id == t.step_id)
            for i in cited
        )
        if t is None or not on_step:
            return _noted(
                report,
                f"llm {self.strategy}: step {a.step} dropped, no cited evidence on it ({calls} call(s))",
            )
        owner = dict(
            zip((u.step_id for u in tr.turns), owners(tr, failing_turns(tr, detect(tr))), strict=True)
        )
        authors = {agent_key(t.agent), owner[t.step_id]}
        backed = {agent_key(str(known[i].attributes.get("agent"))) for i in cited if i in known}
        backed |= {agent_key(offered[i].agent) for i in cited if i in offered}
        agent = tr.display(a.agent) if a.agent and agent_key(a.agent) in authors | backed else None
        notes = [] if agent or not a.agent else [f"llm agent {a.agent!r} dropped: not backed by a cited item"]
        agent = agent or tr.display(owner[t.step_id]) or t.agent
        new = [
            Evidence(
                evidence_id=i,
                kind="turn",
                ref_id=offered[i].step_id,
                title=f"Step {offered[i].n} by {offered[i].agent}",
                snippet=_clip(offered[i].text, 240),
                attributes={"step": offered[i].n, "agent": offered[i].agent, "cited_by": "llm"},
                step_id=offered[i].step_id,
                order=offered[i].n,
            )
            for i in cited
            if i in offered and i not in known
        ]
        prior = {report.root_cause_step: report.step_probability}
        prior |= {alt.step: alt.probability for alt in report.alternatives}
        moved = report.root_cause_step != a.step or agent_key(report.responsible_agent) != agent_key(agent)
        alternatives = [alt for alt in report.alternatives if alt.step != a.step]
        if moved and report.root_cause is not None and report.root_cause.step_id:
            alternatives.insert(
                0,
                Alternative(
                    step=report.root_cause_step or 0,
                    step_id=report.root_cause.step_id,
                    agent=report.responsible_agent or "",
                    probability=report.step_probability or 0.0,
                    evidence_ids=report.root_cause.evidence_ids[:6],
                ),
            )
        # The model's words stay only where each sentence cites the evidence it rests on (llm.py).
        said, _ = grounded_sentences(a.reason, set(known) | set(offered))
        words = " ".join(said) or f"named this step, citing {', '.join(cited)}"
        reason = f"LLM ({self.strategy}): {words}"
        hypothesis = Hypothesis(
            title=f"Decisive step {a.step} by {agent} (LLM, {self.strategy})",
            description=reason,
            evidence_ids=cited,
            confidence=a.confidence,
            source="llm",
        )
        root = (
            report.root_cause.model_copy(
                update={"step_id": t.step_id, "agent": agent, "evidence_ids": cited, "reason": reason}
            )
            if report.root_cause
            else None
        )
        agrees = "agrees with" if not moved else "differs from"
        return report.model_copy(
            update={
                "root_cause": root,
                "root_cause_step": a.step,
                "responsible_agent": agent,
                "step_probability": prior.get(a.step),
                "alternatives": alternatives[:5],
                "evidence_index": [*report.evidence_index, *new],
                "hypotheses": [hypothesis, *report.hypotheses],
                "summary": f"{report.summary} LLM ({self.strategy}): step {a.step} by {agent}, which "
                f"{agrees} the rules.",
                "generated_by": "rules+llm",
                "notes": [
                    *report.notes,
                    *notes,
                    f"llm {self.strategy}: step {a.step} by {agent} in {calls} call(s); "
                    f"{bad} unknown evidence id(s) dropped",
                ],
            }
        )


def _answer(data: dict[str, Any] | None) -> Answer | None:
    if not data:
        return None
    try:
        step = int(data["step"])
    except (KeyError, TypeError, ValueError):
        return None
    ids = data.get("evidence_ids")
    conf = data.get("confidence")
    return Answer(
        step=step,
        agent=str(data["agent"]) if data.get("agent") else None,
        evidence_ids=[str(i) for i in ids] if isinstance(ids, list) else [],
        reason=str(data.get("reason") or ""),
        confidence=conf if conf in ("high", "medium", "low") else "low",
    )


def _noted(report: RcaReport, note: str) -> RcaReport:
    return report.model_copy(update={"notes": [*report.notes, note]})
