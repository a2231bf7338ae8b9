"""Classification: each piece of evidence gets the categories its facts support — the taxonomy's rules
over its words, error class and status code (``taxonomy``, data), and the few facts no text says (an
empty retrieval, a timed-out status, a schema guardrail, repeats)."""

from __future__ import annotations

from opslab.rca.model import Category, Evidence
from opslab.rca.taxonomy import Taxonomy, shipped


def categorize(ev: Evidence, taxonomy: Taxonomy | None = None) -> list[Category]:
    """Categories this evidence supports, in precedence order (empty when it matches no rule)."""
    tax = taxonomy or shipped()
    found: set[Category] = set(tax.categorize(ev))
    a = ev.attributes
    if a.get("empty_result"):
        found.add("retrieval_empty")
    if a.get("status") == "timeout":
        found.add("timeout")
    if ev.kind == "guardrail" and "schema" in str(a.get("type", "")).lower():
        found.add("tool_schema_mismatch")
    if int(a.get("retries") or 0) >= 3 or int(a.get("repeats") or 0) >= 3:
        found.add("planner_loop")
    order = tax.precedence
    return [c for c in order if c in found] + sorted(found - set(order))


def classify(
    evidence: list[Evidence], hints: dict[str, list[Category]], taxonomy: Taxonomy | None = None
) -> list[Evidence]:
    """The evidence with ``categories`` filled in (rule matches plus run-level hints)."""
    out = []
    for ev in evidence:
        extra = hints.get(ev.evidence_id, [])
        updated = ev.model_copy(update={"categories": list(dict.fromkeys([*ev.categories, *extra]))})
        out.append(updated.model_copy(update={"categories": categorize(updated, taxonomy)}))
    return out
