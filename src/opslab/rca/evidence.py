"""Evidence: the facts of a run worth citing, each with a stable id (``ev_tool_call-001``)."""

from __future__ import annotations

import re

from opslab.rca.model import Category, Evidence
from opslab.telemetry import AgentRunIn, VersionStat, build_timeline

SNIPPET = 300
_GENERIC = re.compile(
    r"^\s*(\d{3}\s*)?(internal server error|server error|error|errors?|failed|failure|unknown( error)?|"
    r"exception|"
    r"an error (has )?occurred|something went wrong|unexpected error|bad gateway|service unavailable|"
    r"request failed|operation failed|n/?a|none|null)?[.!]?\s*$",
    re.IGNORECASE,
)
# Error classes that name no particular failure: they say an exception happened, not which.
_GENERIC_CLASS = re.compile(
    r"^(base|generic|unknown|internal|server|internalserver|runtime|http)?(exception|error)$", re.I
)
LOOP_REPEATS = 3  # the same call, same arguments, this many times: a loop, even when every call succeeds
_RETRIEVAL_TOOL = re.compile(
    r"search|retriev|query|lookup|find|rag|vector|knowledge|kb|index|fetch_docs", re.I
)
_EMPTY_RESULT = re.compile(
    r"^\s*(\[\s*\]|\{\s*\}|none|null|empty|0 results?|"
    r"no (results?|documents?|matches|hits|records)( found)?\.?)\s*$",
    re.IGNORECASE,
)


def is_generic(text: str | None) -> bool:
    """True for messages that say only that something failed ("Internal Server Error")."""
    return text is None or bool(_GENERIC.match(text))


def _generic_failure(message: str | None, error_class: str | None, status_code: int | None) -> bool:
    """Nothing in the failure says why: a generic message, a generic or no error class, no status but 500."""
    return (
        is_generic(message)
        and (not error_class or bool(_GENERIC_CLASS.match(error_class.strip())))
        and status_code in (None, 500)
    )


def _clip(text: str | None) -> str:
    text = (text or "").strip()
    return text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…"


def collect_evidence(run: AgentRunIn) -> list[Evidence]:
    """Failed and erroring tool calls, guardrail events, failed or looping steps, a specific run error."""
    order = {(item.kind, item.id): i for i, item in enumerate(build_timeline(run).items)}
    steps = {s.step_id: s for s in run.steps}
    out: list[Evidence] = []
    failed_run = run.status != "success"
    repeats: dict[tuple[str, str], list[str]] = {}
    for c in run.tool_calls:
        repeats.setdefault((c.tool_name, c.args_hash or repr(c.args_json)), []).append(c.call_id)
    first_of_loop = {ids[0]: len(ids) for ids in repeats.values() if len(ids) >= LOOP_REPEATS}
    for c in run.tool_calls:
        at = c.started_at or (steps[c.step_id].started_at if c.step_id in steps else None)
        attrs = {
            "tool_name": c.tool_name,
            "error_class": c.error_class,
            "status_code": c.status_code,
            "retries": c.retries,
        }
        erroring = (
            c.status != "success"
            or (c.status_code or 0) >= 400
            or bool(c.error_class)
            or not is_generic(c.error_message)
        )
        empty = (
            c.status == "success"
            and failed_run
            and bool(_RETRIEVAL_TOOL.search(c.tool_name))
            and (not (c.result_summary or "").strip() or bool(_EMPTY_RESULT.match(c.result_summary or "")))
        )
        looping = c.retries >= LOOP_REPEATS or c.call_id in first_of_loop
        if not erroring and not empty and not looping:
            continue
        if erroring:
            title = f"Failed tool call: {c.tool_name}"
            snippet = c.error_message or c.result_summary or c.error_class or f"status {c.status}"
            if _generic_failure(c.error_message, c.error_class, c.status_code) and not looping:
                attrs["generic"] = True
        elif empty:
            attrs["empty_result"] = True
            title, snippet = f"Empty result from tool: {c.tool_name}", c.result_summary or "(empty result)"
        elif c.call_id in first_of_loop:
            attrs["repeats"] = first_of_loop[c.call_id]
            n = first_of_loop[c.call_id]
            title = f"Repeated tool call: {c.tool_name} called {n} times with the same arguments"
            snippet = c.result_summary or f"{c.tool_name}({c.args_json})"
        else:
            title = f"Tool call retried {c.retries} times: {c.tool_name}"
            snippet = c.result_summary or f"{c.tool_name}({c.args_json})"
        out.append(
            Evidence(
                evidence_id=f"ev_tool_{c.call_id}",
                kind="tool_call",
                ref_id=c.call_id,
                title=title,
                snippet=_clip(snippet),
                attributes={k: v for k, v in attrs.items() if v is not None},
                step_id=c.step_id,
                at=at,
                order=order.get(("tool_call", c.call_id), 0),
            )
        )
    for g in run.guardrail_events:
        step_id = g.step_id or next((c.step_id for c in run.tool_calls if c.call_id == g.call_id), None)
        out.append(
            Evidence(
                evidence_id=f"ev_guard_{g.event_id}",
                kind="guardrail",
                ref_id=g.event_id,
                title=f"Guardrail triggered: {g.type}",
                snippet=_clip(g.message),
                attributes={k: v for k, v in {"type": g.type, "call_id": g.call_id}.items() if v},
                step_id=step_id,
                at=g.created_at,
                order=order.get(("guardrail", g.event_id), 0),
            )
        )
    for s in run.steps:
        failed = s.status in ("failure", "timeout") and not is_generic(s.output_summary)
        looping = s.retries >= 3
        if not failed and not looping:
            continue
        title = (
            f"Failed step: {s.name or s.step_id}" if failed else f"Step retried {s.retries} times: {s.name}"
        )
        out.append(
            Evidence(
                evidence_id=f"ev_step_{s.step_id}",
                kind="step",
                ref_id=s.step_id,
                title=title,
                snippet=_clip(s.output_summary or s.input_summary),
                attributes={
                    "retries": s.retries,
                    "status": s.status,
                    **({"agent": s.agent} if s.agent else {}),
                },
                step_id=s.step_id,
                at=s.started_at,
                order=order.get(("step", s.step_id), 0),
            )
        )
    if failed_run and (run.error_type or not is_generic(run.error_message)):
        generic = _generic_failure(run.error_message, run.error_type, None)
        # The error that ended the run belongs to the step that failed last, if one did.
        ended_at = next((s.step_id for s in reversed(run.steps) if s.status in ("failure", "timeout")), None)
        out.append(
            Evidence(
                evidence_id=f"ev_run_{run.run_id}",
                kind="run_error",
                ref_id=run.run_id,
                title=f"Run failed: {run.error_type or 'error'}",
                snippet=_clip(run.error_message or run.error_type),
                attributes={
                    "error_type": run.error_type,
                    "status": run.status,
                    **({"generic": True} if generic else {}),
                },
                step_id=ended_at,
                at=run.ended_at,
                order=len(order) + 1,
            )
        )
    return sorted(out, key=lambda e: (e.order, e.evidence_id))


def version_evidence(
    run: AgentRunIn, stats: list[VersionStat], *, min_runs: int = 5, alpha: float = 0.05
) -> Evidence | None:
    """This agent version fails significantly more often than the version before it (Fisher's exact test)."""
    from opslab.judge import two_proportion_test

    by_version = sorted(stats, key=lambda v: v.first_seen_order)
    current = next((v for v in by_version if v.version == run.agent_version), None)
    if current is None:
        return None
    earlier = [v for v in by_version if v.first_seen_order < current.first_seen_order]
    if not earlier:
        return None
    previous = earlier[-1]
    if current.runs < min_runs or previous.runs < min_runs:
        return None
    test = two_proportion_test(current.failures, current.runs, previous.failures, previous.runs)
    rate_now, rate_before = current.failures / current.runs, previous.failures / previous.runs
    if test.p_value >= alpha or rate_now <= rate_before:
        return None
    return Evidence(
        evidence_id=f"ev_history_{run.agent_name}-{current.version}",
        kind="version_history",
        ref_id=f"{run.agent_name}@{current.version}",
        title=(
            f"Failure rate rose from {rate_before:.0%} ({previous.version}) "
            f"to {rate_now:.0%} ({current.version})"
        ),
        snippet=(
            f"{current.failures}/{current.runs} runs of {current.version} failed against "
            f"{previous.failures}/{previous.runs} of {previous.version} (Fisher p={test.p_value:.3g})"
        ),
        attributes={
            "version": current.version,
            "previous_version": previous.version,
            "failure_rate": rate_now,
            "previous_failure_rate": rate_before,
            "runs": current.runs,
            "previous_runs": previous.runs,
            "p_value": test.p_value,
        },
        order=10**9,
        categories=["prompt_regression"],
    )


def category_hint(run: AgentRunIn) -> dict[str, list[Category]]:
    """Run-level patterns no single item shows: the same tool called with the same arguments 3+ times."""
    seen: dict[tuple[str, str], list[str]] = {}
    for c in run.tool_calls:
        key = (c.tool_name, c.args_hash or repr(c.args_json))
        seen.setdefault(key, []).append(c.call_id)
    return {
        f"ev_tool_{cid}": ["planner_loop"] for ids in seen.values() if len(ids) >= LOOP_REPEATS for cid in ids
    }


def generic_only(evidence: list[Evidence]) -> list[Evidence]:
    """The evidence, when every item of it only says that something failed (classified, so after
    ``classify``): then there is nothing specific to explain the run with. Else []."""
    if evidence and all(e.attributes.get("generic") and not e.categories for e in evidence):
        return evidence
    return []
