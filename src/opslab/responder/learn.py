"""Learning: after a verified recovery (and only then), the incident becomes a knowledge document.

It is Markdown with front matter (``kind: incident``), written through ``opslab.knowledge.add_document``
(validated, atomic), carrying the category, the symptoms and signals as seen, and the action that
worked as a typed ``remediation``. The next incident with the same symptoms retrieves it, and the
planner tries what worked first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import yaml

from opslab.errors import Conflict
from opslab.knowledge import DOCUMENT_SCHEMA_VERSION, Document, add_document
from opslab.responder.model import Evidence, Incident

_SLUG_JUNK = re.compile(r"[^a-z0-9]+")


def document_id(incident_id: str) -> str:
    return "incident-" + _SLUG_JUNK.sub("-", incident_id.lower()).strip("-")


def incident_document(incident: Incident, *, symptoms: Sequence[str], evidence: Sequence[Evidence]) -> str:
    """The Markdown text of ``incident`` as a knowledge document."""
    worked = [a for a in incident.actions if a.status == "success"][-1:]
    diagnosis = incident.diagnosis
    category = incident.category or "unknown"
    cited = set(diagnosis.evidence_ids) if diagnosis else set()
    signals = [f"{e.title}: {e.value}" for e in evidence if e.evidence_id in cited]
    meta = {
        "schema_version": DOCUMENT_SCHEMA_VERSION,
        "id": document_id(incident.id),
        "title": f"Incident {incident.id}: {diagnosis.summary if diagnosis else category}"[:200],
        "kind": "incident",
        "summary": incident.root_cause or (diagnosis.summary if diagnosis else ""),
        "categories": [category],
        "tags": ["incident", "resolved", category.replace("_", "-")],
        "symptoms": list(dict.fromkeys(symptoms))[:10],
        "signals": signals[:10],
        "verification_steps": [
            "the detector saw clean polls and the action server reported the target healthy"
        ],
        # The risk is the catalog's, as it was when the action ran: learning that an action worked never
        # makes it less risky (and the planner reads the risk from the catalog anyway).
        "remediation": [
            {
                "name": a.action,
                "params": a.params,
                "risk": a.risk or "high",
                "description": "resolved this incident",
            }
            for a in worked
        ],
    }
    tried = "\n".join(
        f"- `{a.action}` {a.params or ''}: {a.status} {a.detail}".rstrip() for a in incident.actions
    )
    timeline = "\n".join(f"- {s.at.isoformat()} **{s.node}**: {s.message}" for s in incident.steps)
    body = (
        f"# Incident {incident.id}\n\n"
        f"Diagnosis: {diagnosis.summary if diagnosis else category} "
        f"(confidence {incident.confidence:.2f}).\n\n"
        f"Root cause: {incident.root_cause or 'not established'}\n\n"
        f"## Actions\n\n{tried or '- none'}\n\n## Timeline\n\n{timeline}\n"
    )
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n" + body


def learn_incident(
    incident: Incident, *, symptoms: Sequence[str], evidence: Sequence[Evidence], folder: Path
) -> Document:
    """Write the document of a resolved incident into ``folder``; refuses anything not resolved."""
    if incident.status != "resolved" or not any(a.status == "success" for a in incident.actions):
        raise Conflict(f"incident {incident.id} is not a verified recovery ({incident.status})")
    return add_document(incident_document(incident, symptoms=symptoms, evidence=evidence), folder)
