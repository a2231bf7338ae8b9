"""An incident as an agent run (``opslab.telemetry.AgentRunIn``): the responder is an agent like any
other, so its runs land in the same store, timeline and RCA as the agents it watches.

Each workflow node is a step; each probe, retrieval, LLM call and action is a tool call (a failed
action is a tool call with status ``failure``); the run's status follows the incident's outcome.
"""

from __future__ import annotations

from opslab.responder.model import Incident, ToolUse
from opslab.telemetry import AgentRunIn, RunStatus, StepIn, ToolCallIn

AGENT_NAME = "opslab-responder"
_RUN_STATUS: dict[str, RunStatus] = {
    "resolved": "success",
    "escalated": "failure",
    "open": "running",
    "awaiting_approval": "running",
}


def incident_run(incident: Incident, *, agent_version: str | None = None) -> AgentRunIn:
    steps: list[StepIn] = []
    for i, step in enumerate(incident.steps):
        step_id = f"{incident.id}-s{i:03d}-{step.node}"
        ended = incident.steps[i + 1].at if i + 1 < len(incident.steps) else step.at
        steps.append(
            StepIn(
                step_id=step_id,
                name=step.node,
                status="success",
                started_at=step.at,
                ended_at=max(ended, step.at),
                output_summary=step.message[:2000],
            )
        )
    calls: list[ToolCallIn] = []
    for i, use in enumerate(incident.tools):
        failed = use.status == "error"
        calls.append(
            ToolCallIn(
                call_id=f"{incident.id}-t{i:03d}",
                step_id=_step_of(incident, use, [s.step_id for s in steps]),
                tool_name=use.tool,
                status="failure" if failed else "success",
                args_json=dict(use.args) or None,
                result_summary=use.detail or None,
                error_class="ActionError" if failed and use.tool.startswith("action:") else None,
                error_message=use.detail if failed else None,
                started_at=use.at,
                ended_at=use.at,
            )
        )
    status = _RUN_STATUS[incident.status]
    ended_at = incident.resolved_at or (incident.steps[-1].at if incident.steps else incident.opened_at)
    diagnosis = incident.diagnosis
    return AgentRunIn(
        run_id=incident.id,
        agent_name=AGENT_NAME,
        agent_version=agent_version,
        started_at=incident.opened_at,
        ended_at=None if status == "running" else max(ended_at, incident.opened_at),
        status=status,
        error_type="Escalated" if incident.status == "escalated" else None,
        error_message=incident.recommendation or None if incident.status == "escalated" else None,
        correlation_ids=[incident.id],
        steps=steps,
        tool_calls=calls,
        attributes={
            "incident_status": incident.status,
            "category": incident.category,
            "confidence": incident.confidence,
            "diagnosis": diagnosis.summary if diagnosis else None,
            "root_cause": incident.root_cause,
            "actions": [f"{a.action}:{a.status}" for a in incident.actions],
            "learned_document": incident.learned_document,
        },
    )


def _step_of(incident: Incident, use: ToolUse, step_ids: list[str]) -> str | None:
    """A node records its step when it ends: a call belongs to the first step of its node after it."""
    same = [(s, sid) for s, sid in zip(incident.steps, step_ids, strict=True) if s.node == use.node]
    return next((sid for s, sid in same if s.at >= use.at), same[-1][1] if same else None)
