"""Holds are delays, never verdicts: an incident whose response waits (an action cooling down, the kill
switch, a high-risk action waiting to be confirmed; ``Incident.held``) is acted on again when the hold
ends and its fault still shows, and closed with nothing done when the fault ends first. ``Responder``
mixes this in; the poll loop calls ``_resume_if_due`` and ``_close_held``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opslab.errors import NotFound
from opslab.responder.model import Assessment, AuditRecord, Hold, Incident, ProgressEvent, Step
from opslab.responder.observation import Observation

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph.state import CompiledStateGraph
    from langgraph.types import Command

    from opslab.responder.detect import Detector
    from opslab.responder.ongoing import Ongoing
    from opslab.responder.ports import Clock
    from opslab.responder.versions import VersionedIncidents


class HeldIncidents:
    store: VersionedIncidents
    clock: Clock
    detector: Detector
    graph: CompiledStateGraph[Any, None, Any, Any]
    _history: deque[Observation]
    _ongoing: Ongoing
    _progress: Callable[[ProgressEvent], None]

    @property
    def halted(self) -> bool:
        raise NotImplementedError

    def _run(self, incident_id: str, command: Command[Any] | None) -> Incident:
        raise NotImplementedError

    def _hold_over(self, hold: Hold) -> bool:
        if self.halted:
            return False  # nothing acts while the kill switch is on, whatever the hold was for
        if hold.reason == "kill_switch":
            return True
        return hold.until is None or self.clock.now() >= hold.until

    def _resume_if_due(self, incident_id: str, obs: Observation, assessment: Assessment) -> Incident | None:
        """The held incident acted on again, when its hold is over and its fault still shows."""
        try:
            incident = self.store.get(incident_id)
        except NotFound:
            return None
        hold = incident.held
        if hold is None or incident.status != "open" or not assessment.anomalous or not self._hold_over(hold):
            return None
        now = self.clock.now()
        message = (
            f"hold over ({hold.reason}); the fault goes on: {'; '.join(assessment.reasons)}: acting again"
        )
        incident.held = None
        incident.steps.append(Step(at=now, node="monitor", message=message))
        self.store.append_audit(
            AuditRecord(at=now, incident_id=incident_id, decision="resumed", detail=message)
        )
        self.detector.reset()
        state = {
            "incident": incident.model_dump(mode="json"),
            "observation": obs.model_dump(mode="json"),
            "history": [o.model_dump(mode="json") for o in self._history],
            "baseline": self.detector.baseline().model_dump(mode="json"),
            "assessment": assessment.model_copy(update={"is_incident": True}).model_dump(mode="json"),
            "is_unhealthy": True,
            "verify_signals": [],
            "next_action": None,
            "outcome": "resumed",
        }
        self.graph.update_state(_thread(incident_id), state, as_node="detect")
        resumed = self._run(incident_id, None)
        self._ongoing.hold(resumed)
        return resumed

    def _close_held(self, incident_id: str) -> None:
        """The fault of a held incident ended before the hold did: resolved, with nothing done."""
        try:
            incident = self.store.get(incident_id)
        except NotFound:
            return
        if incident.status != "open" or incident.held is None:
            return
        now = self.clock.now()
        why = f"the fault ended while the response waited ({incident.held.reason}): no action taken"
        incident.status, incident.resolved_at, incident.held = "resolved", now, None
        incident.recommendation = why
        incident.steps.append(Step(at=now, node="monitor", message=why))
        self.store.save(incident)
        self.store.append_audit(AuditRecord(at=now, incident_id=incident_id, decision="resolved", detail=why))
        self._progress(
            ProgressEvent(incident_id=incident_id, node="monitor", message=why, at=now, status="resolved")
        )


def _thread(incident_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": incident_id}}
