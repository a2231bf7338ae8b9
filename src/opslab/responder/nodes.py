"""The workflow's nodes: one method per seed step, each taking the JSON state and returning the keys
it changes. Every node appends a ``Step`` to the incident, saves it and reports progress; every
decision and action is an ``AuditRecord``. ``workflow.py`` wires them into a LangGraph graph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from opslab.errors import OpslabError
from opslab.knowledge import Document, KnowledgeBase
from opslab.responder.config import ResponderConfig
from opslab.responder.detect import Baseline, Detector
from opslab.responder.model import (
    AgentState,
    Assessment,
    AuditRecord,
    Diagnosis,
    Evidence,
    Incident,
    IncidentStatus,
    ProgressEvent,
    Step,
    ToolUse,
)
from opslab.responder.observation import Observation
from opslab.responder.ports import ActionExecutor, Chat, Clock, IncidentStore, TargetProbe

State = dict[str, Any]


@dataclass
class WorkflowDeps:
    probe: TargetProbe
    actions: ActionExecutor
    store: IncidentStore
    detector: Detector
    config: ResponderConfig
    clock: Clock
    knowledge: Callable[[], KnowledgeBase]
    halted: Callable[[], bool]
    knowledge_dir: Path | None = None
    on_learned: Callable[[Document], None] | None = None
    chat: Chat | None = None
    on_progress: Callable[[ProgressEvent], None] | None = None


def symptoms_of(obs: Observation, assessment: Assessment) -> dict[str, Any]:
    """The seed's ``symptoms`` shape: what the agent sees."""
    return {
        "timestamp": obs.timestamp.isoformat(),
        "health_status": obs.health_status,
        "reachability": obs.reachability,
        "error_rate": obs.error_rate,
        "pool_health": obs.pool.pool_health if obs.pool else None,
        "pool_utilization": obs.pool.utilization if obs.pool else None,
        "avg_response_time_ms": obs.avg_response_time_ms,
        "latency_p95_ms": obs.latency_p95_ms,
        "version": obs.version,
        "logs": [line.message for line in obs.logs if line.level.upper() != "INFO"][-10:],
        "signals": list(assessment.signals),
        "reasons": list(assessment.reasons),
        "explained": list(assessment.explained),
        "host_cpu_busy_pct": obs.host_cpu_busy_pct,
    }


class NodeKit:
    """What every node shares: reading typed values out of the state and recording what happened."""

    def __init__(self, deps: WorkflowDeps) -> None:
        self.deps = deps

    def now(self) -> datetime:
        return self.deps.clock.now()

    def incident(self, state: AgentState | State) -> Incident:
        raw = state.get("incident")
        if raw:
            return Incident.model_validate(raw)
        assessment = self.assessment(state)
        incident = Incident(id=str(state["incident_id"]), opened_at=self.now(), signals=assessment.signals)
        self.audit(incident, "opened", "; ".join(assessment.reasons))
        return incident

    @staticmethod
    def observation(state: AgentState | State) -> Observation:
        return Observation.model_validate(state["observation"])

    @staticmethod
    def history(state: AgentState | State) -> list[Observation]:
        return [Observation.model_validate(o) for o in state.get("history", [])]

    @staticmethod
    def baseline(state: AgentState | State) -> Baseline:
        return Baseline.model_validate(state.get("baseline") or {})

    @staticmethod
    def assessment(state: AgentState | State) -> Assessment:
        return Assessment.model_validate(state.get("assessment") or {})

    @staticmethod
    def diagnosis(state: AgentState | State) -> Diagnosis:
        return Diagnosis.model_validate(state["diagnosis_detail"])

    @staticmethod
    def evidence(state: AgentState | State) -> list[Evidence]:
        return [Evidence.model_validate(e) for e in state.get("evidence", [])]

    def observe(self) -> Observation:
        """One poll of the target; when it did not answer, what the action server says of its process."""
        obs = self.deps.probe.observe()
        if not obs.answered:
            obs = obs.model_copy(update={"liveness": self.deps.actions.liveness()})
        return obs

    def tool(
        self,
        incident: Incident,
        node: str,
        tool: str,
        *,
        ok: bool = True,
        args: dict[str, JsonValue] | None = None,
        detail: str = "",
    ) -> None:
        incident.tools.append(
            ToolUse(
                at=self.now(),
                node=node,
                tool=tool,
                status="success" if ok else "error",
                args=args or {},
                detail=detail[:500],
            )
        )

    def audit(
        self,
        incident: Incident,
        decision: str,
        detail: str = "",
        *,
        action: str | None = None,
        params: dict[str, JsonValue] | None = None,
    ) -> None:
        self.deps.store.append_audit(
            AuditRecord(
                at=self.now(),
                incident_id=incident.id,
                decision=decision,
                detail=detail[:2000],
                action=action,
                params=params or {},
            )
        )

    def step(
        self, incident: Incident, node: str, message: str, *, status: IncidentStatus | None = None
    ) -> dict[str, Any]:
        """Record ``node``'s step on the incident, save it, report progress; the state's new incident."""
        if status is not None:
            incident.status = status
        incident.steps.append(Step(at=self.now(), node=node, message=message))
        self.deps.store.save(incident)
        if self.deps.on_progress is not None:
            self.deps.on_progress(
                ProgressEvent(
                    incident_id=incident.id, node=node, message=message, at=self.now(), status=incident.status
                )
            )
        return incident.model_dump(mode="json")

    def safe_learn(self, fn: Callable[[], Document]) -> tuple[Document | None, str]:
        try:
            return fn(), ""
        except (OpslabError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
