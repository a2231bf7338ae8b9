"""Classification rules: each piece of evidence gets the categories its facts support."""

from __future__ import annotations

import re

from opslab.rca.model import PRECEDENCE, Category, Evidence

_RULES: tuple[tuple[Category, re.Pattern[str]], ...] = (
    (
        "tool_permission",
        re.compile(
            r"permission|forbidden|unauthori[sz]ed|access denied|not allowed|insufficient scope|\b40[13]\b",
            re.I,
        ),
    ),
    ("rate_limited", re.compile(r"rate.?limit|too many requests|quota|throttl|\b429\b", re.I)),
    ("timeout", re.compile(r"time[ds]?[ -]?out|deadline exceeded|took too long|\b(408|504)\b", re.I)),
    (
        "tool_schema_mismatch",
        re.compile(
            r"schema|validation|missing required|required (field|parameter|argument)|"
            r"invalid (argument|parameter|type|field)|unexpected (argument|field|keyword)|"
            r"unknown (field|parameter)|type ?error|malformed",
            re.I,
        ),
    ),
    (
        "retrieval_empty",
        re.compile(
            r"no (results?|documents?|matches|hits)|0 results|empty (result|response|retrieval)|"
            r"nothing found",
            re.I,
        ),
    ),
)
_STATUS: dict[int, Category] = {
    401: "tool_permission",
    403: "tool_permission",
    429: "rate_limited",
    408: "timeout",
    504: "timeout",
    400: "tool_schema_mismatch",
    422: "tool_schema_mismatch",
}
_CLASS: tuple[tuple[Category, re.Pattern[str]], ...] = (
    ("tool_permission", re.compile(r"permission|auth|forbidden", re.I)),
    ("rate_limited", re.compile(r"ratelimit|rate_limit|throttl", re.I)),
    ("timeout", re.compile(r"timeout", re.I)),
    ("tool_schema_mismatch", re.compile(r"validation|schema|typeerror|valueerror", re.I)),
)


def categorize(ev: Evidence) -> list[Category]:
    """Categories this evidence supports, in precedence order (empty when it matches no rule)."""
    found: set[Category] = set(ev.categories)
    a = ev.attributes
    status = a.get("status_code")
    if isinstance(status, int) and status in _STATUS:
        found.add(_STATUS[status])
    error_class = str(a.get("error_class") or "")
    for category, pattern in _CLASS:
        if pattern.search(error_class):
            found.add(category)
    if a.get("empty_result"):
        found.add("retrieval_empty")
    if a.get("status") == "timeout":
        found.add("timeout")
    if ev.kind == "guardrail" and "schema" in str(a.get("type", "")).lower():
        found.add("tool_schema_mismatch")
    if int(a.get("retries") or 0) >= 3 or int(a.get("repeats") or 0) >= 3:
        found.add("planner_loop")
    text = f"{ev.title} {ev.snippet}"
    for category, pattern in _RULES:
        if pattern.search(text):
            found.add(category)
    return [c for c in PRECEDENCE if c in found]


def classify(evidence: list[Evidence], hints: dict[str, list[Category]]) -> list[Evidence]:
    """The evidence with ``categories`` filled in (rule matches plus run-level hints)."""
    out = []
    for ev in evidence:
        extra = hints.get(ev.evidence_id, [])
        updated = ev.model_copy(update={"categories": list(dict.fromkeys([*ev.categories, *extra]))})
        out.append(updated.model_copy(update={"categories": categorize(updated)}))
    return out
