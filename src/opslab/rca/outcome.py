"""The run's outcome first: what it handled, and, when it failed, the chain from cause to symptom.

- A run that **succeeded** has no root cause. Its failed calls and guardrail events are listed as
  handled: a call retried until it succeeded, a guardrail that acted while the run went on.
- In a run that **failed**, an error it recovered from (the same tool succeeded later; the same step ran
  again and succeeded) is handled too, and never its root cause: the error that ended the run outranks
  errors handled before it.
- **Cause over symptom**: when the first unhandled failure is a tool call whose arguments carry a value
  that entered the run earlier from nowhere (``dataflow``), the decisive step is where the value
  entered; the chain goes from there through each call that carried it to the failure.
"""

from __future__ import annotations

from opslab.rca.dataflow import Entry, entries, identifiers
from opslab.rca.model import ChainLink, Evidence, HandledIssue
from opslab.telemetry import AgentRunIn, ToolCallIn, build_timeline

_NOT_FOUND = ("not found", "no such", "does not exist", "doesn't exist", "unknown", "no payment", "invalid")


def handled_issues(run: AgentRunIn, evidence: list[Evidence]) -> dict[str, HandledIssue]:
    """The evidence the run dealt with, by evidence id (everything, when the run succeeded)."""
    succeeded = run.status == "success"
    calls = run.tool_calls
    position = {c.call_id: i for i, c in enumerate(calls)}
    steps = run.steps
    out: dict[str, HandledIssue] = {}
    for e in evidence:
        how: str | None = None
        if e.kind == "tool_call" and e.ref_id in position and _failed(calls[position[e.ref_id]]):
            failed = calls[position[e.ref_id]]
            later = next(
                (
                    c
                    for c in calls[position[e.ref_id] + 1 :]
                    if c.tool_name == failed.tool_name and c.status == "success"
                ),
                None,
            )
            if later is not None:
                how = f"retried: {failed.tool_name} succeeded at {later.call_id}"
        elif e.kind == "step":
            i = next((n for n, s in enumerate(steps) if s.step_id == e.ref_id), None)
            again = (
                None
                if i is None
                else next(
                    (
                        s
                        for s in steps[i + 1 :]
                        if s.name and s.name == steps[i].name and s.status == "success"
                    ),
                    None,
                )
            )
            if again is not None:
                how = f"ran again and succeeded at {again.step_id}"
        elif e.kind == "guardrail" and (succeeded or _went_on_after(run, e)):
            how = "the guardrail acted and the run went on"
        if how is None and succeeded and e.kind != "version_history":
            how = "the run succeeded all the same"
        if how is not None:
            out[e.evidence_id] = HandledIssue(
                evidence_id=e.evidence_id, step_id=e.step_id, what=e.title, how=how
            )
    return out


def _failed(call: ToolCallIn) -> bool:
    return call.status != "success" or (call.status_code or 0) >= 400


def _went_on_after(run: AgentRunIn, e: Evidence) -> bool:
    """A step after the guardrail's own succeeded."""
    ids = [s.step_id for s in run.steps]
    if e.step_id not in ids:
        return False
    return any(s.status == "success" for s in run.steps[ids.index(e.step_id) + 1 :])


def value_chain(run: AgentRunIn, symptom: Evidence) -> tuple[list[Evidence], list[ChainLink]] | None:
    """When the failed call ``symptom`` used a value that entered the run from nowhere: the evidence of
    where it entered (first) and of each call that carried it on, and the chain from the cause to the
    failure, each link citing one of them; else None."""
    calls = {c.call_id: c for c in run.tool_calls}
    failed = calls.get(symptom.ref_id)
    if symptom.kind != "tool_call" or failed is None:
        return None
    used = set(identifiers(failed.args_json))
    if not used:
        return None
    said = f"{symptom.snippet} {failed.error_message or ''}".lower()
    found = [x for x in entries(run) if x.value in used]
    entry = next((x for x in found if _credible(x, failed.call_id, said)), None)
    if entry is None:
        return None
    order = _timeline_order(run)
    cause = _argument_evidence(entry, order=order.get(entry.call.call_id, symptom.order))
    added = [cause]
    links = [
        ChainLink(evidence_id=cause.evidence_id, step_id=cause.step_id, role="cause", says=cause.snippet)
    ]
    carried = [
        c
        for c in run.tool_calls
        if c.call_id not in (entry.call.call_id, failed.call_id)
        and entry.value in set(identifiers(c.args_json))
    ]
    for c in carried:
        ev = _carried_evidence(c, entry.value, order=order.get(c.call_id, symptom.order))
        added.append(ev)
        links.append(
            ChainLink(evidence_id=ev.evidence_id, step_id=c.step_id, role="propagation", says=ev.snippet)
        )
    links.append(
        ChainLink(
            evidence_id=symptom.evidence_id,
            step_id=symptom.step_id,
            role="symptom",
            says=f"{failed.tool_name} failed on {entry.value}: {symptom.snippet}",
        )
    )
    return added, links


def _credible(entry: Entry, failing_call: str, said: str) -> bool:
    """A value worth blaming: one close to what an earlier step produced (a typo, swapped digits), or one
    the failure itself names, or answers with "not found", when it came in an earlier call."""
    if entry.nearest is not None:
        return True
    names_it = entry.value.lower() in said or any(word in said for word in _NOT_FOUND)
    return entry.call.call_id != failing_call and names_it


def _argument_evidence(entry: Entry, *, order: int) -> Evidence:
    c = entry.call
    near = f"; the closest value the run had produced before is {entry.nearest}" if entry.nearest else ""
    return Evidence(
        evidence_id=f"ev_arg_{c.call_id}",
        kind="argument",
        ref_id=c.call_id,
        title=f"Value first seen in the arguments of {c.tool_name}: {entry.value}",
        snippet=(
            f"{entry.value} entered the run in {c.tool_name}'s arguments: no earlier step produced it{near}"
        ),
        attributes={
            "value": entry.value,
            "tool_name": c.tool_name,
            **({"nearest": entry.nearest} if entry.nearest else {}),
        },
        step_id=c.step_id,
        at=c.started_at,
        order=order,
        categories=["wrong_tool_argument"],
    )


def _carried_evidence(c: ToolCallIn, value: str, *, order: int) -> Evidence:
    return Evidence(
        evidence_id=f"ev_carry_{c.call_id}",
        kind="argument",
        ref_id=c.call_id,
        title=f"{c.tool_name} carried {value} on",
        snippet=f"{c.tool_name} was called with {value} ({c.status})",
        attributes={"value": value, "tool_name": c.tool_name, "status": c.status},
        step_id=c.step_id,
        at=c.started_at,
        order=order,
        categories=[],
    )


def _timeline_order(run: AgentRunIn) -> dict[str, int]:
    """Each tool call's place in the run's timeline (as ``collect_evidence`` orders evidence)."""
    return {item.id: i for i, item in enumerate(build_timeline(run).items) if item.kind == "tool_call"}
