"""Words for each category, read from the runbook that covers it in the knowledge base.

The runbooks are the ones shipped with opslab (``opslab/knowledge/runbooks``), never a user folder:
the same run always gets the same report, offline. A category without a runbook is a packaging
error, not a run to explain, so it fails loudly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from opslab.errors import OperationFailed
from opslab.knowledge import Document, KnowledgeBase
from opslab.rca.model import ActionItem, Category, Evidence, RcaReport, RunbookRef
from opslab.rca.taxonomy import Taxonomy
from opslab.telemetry import AgentRunIn

# The runbook for a run whose telemetry explains nothing (``RcaReport.insufficient_evidence``).
INSUFFICIENT_EVIDENCE = "insufficient_evidence"


@dataclass(frozen=True)
class Template:
    runbook: RunbookRef
    title: str
    description: str
    verification_steps: tuple[str, ...]
    actions: tuple[ActionItem, ...]


@functools.cache
def _knowledge() -> KnowledgeBase:
    return KnowledgeBase.load()


def _template(doc: Document) -> Template:
    return Template(
        runbook=RunbookRef(id=doc.id, title=doc.title),
        title=doc.title,
        description=doc.summary,
        verification_steps=tuple(doc.verification_steps),
        actions=tuple(
            ActionItem(type=a.type, title=a.title, description=a.description, priority=a.priority)
            for a in doc.actions
        ),
    )


def template_for(category: Category | str, taxonomy: Taxonomy | None = None) -> Template:
    """The hypothesis, verification steps and actions for ``category``: a user's category's own words
    (``taxonomy``), else the built-in runbook's."""
    rule = taxonomy.by_id.get(category) if taxonomy is not None else None
    if rule is not None and rule.own_words:
        return Template(
            runbook=RunbookRef(id=rule.runbook or rule.id, title=rule.runbook_title or rule.title),
            title=rule.title,
            description=rule.description or rule.title,
            verification_steps=rule.verification_steps,
            actions=rule.actions,
        )
    return _builtin(category)


@functools.cache
def _builtin(category: Category | str) -> Template:
    doc = _knowledge().by_category(category)
    if doc is None:
        raise OperationFailed(
            f"no built-in runbook covers RCA category {category!r}", details={"category": category}
        )
    return _template(doc)


def insufficient_template() -> Template:
    return template_for(INSUFFICIENT_EVIDENCE)


def insufficient_report(
    run: AgentRunIn, reason: str, evidence: list[Evidence] | None = None, **fields: Any
) -> RcaReport:
    """Nothing specific to explain the run with: say why, no hypotheses, the runbook's actions to collect
    data (``fields``: more of the report, such as the candidates a localiser would not choose between)."""
    runbook = insufficient_template()
    return RcaReport(
        run_id=run.run_id,
        category="unknown",
        insufficient_evidence=True,
        insufficient_reason=reason,
        summary=f"Insufficient evidence to explain run {run.run_id}: {reason[:1].lower()}{reason[1:]}.",
        evidence_index=evidence or [],
        hypotheses=[],
        confidence="low",
        verification_steps=list(runbook.verification_steps),
        action_items=[a.model_copy() for a in runbook.actions],
        runbook=runbook.runbook,
    ).model_copy(update=fields)
