"""``Responder``: the facade the service, the CLI and the tests drive.

``poll_once`` is one monitor + detect; a confirmed anomaly opens an incident and runs the workflow
(``workflow.py``) to its end or to a pause for approval. ``watch`` repeats that every poll interval.
``trigger`` is the manual button: it responds to anything anomalous now. ``approve``/``reject`` resume a
paused incident; ``resume_unfinished`` continues, after a restart, every incident whose checkpointed
thread still has steps to run. ``halt`` is the kill switch: while it is on, no action is executed.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command

from opslab.errors import Conflict, NotFound
from opslab.knowledge import Document, KnowledgeBase
from opslab.responder.changes import WithExperiments
from opslab.responder.config import ResponderConfig
from opslab.responder.detect import Detector
from opslab.responder.holds import HeldIncidents
from opslab.responder.model import (
    Assessment,
    AuditRecord,
    Incident,
    ProgressEvent,
    ResponderStatus,
    Step,
    ToolUse,
)
from opslab.responder.nodes import WorkflowDeps, symptoms_of
from opslab.responder.observation import Observation
from opslab.responder.ongoing import Ongoing
from opslab.responder.ports import (
    ActionExecutor,
    Chat,
    Clock,
    IncidentChanged,
    IncidentStore,
    SharedKnowledge,
    SystemClock,
    TargetProbe,
)
from opslab.responder.telemetry import incident_run
from opslab.responder.versions import VersionedIncidents
from opslab.responder.workflow import build_workflow
from opslab.telemetry import AgentRunIn

log = logging.getLogger("opslab.responder")


class Responder(HeldIncidents):
    def __init__(
        self,
        *,
        probe: TargetProbe,
        actions: ActionExecutor,
        store: IncidentStore,
        knowledge: KnowledgeBase,
        knowledge_dir: Path | None,
        extra_knowledge: Sequence[Path] = (),
        checkpointer: BaseCheckpointSaver[Any],
        config: ResponderConfig,
        clock: Clock | None = None,
        chat: Chat | None = None,
        record_run: Callable[[AgentRunIn], None] | None = None,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        shared_knowledge: SharedKnowledge | None = None,
        experiments: Callable[[], list[str]] | None = None,
    ) -> None:
        if experiments is not None:
            probe = WithExperiments(probe, experiments)
        self.probe, self.actions, self.config = probe, actions, config
        self.store = VersionedIncidents(store)
        self.clock: Clock = clock or SystemClock()
        self.knowledge_dir = knowledge_dir
        self.extra_knowledge = tuple(extra_knowledge)
        self.checkpointer = checkpointer
        self.record_run = record_run
        self.shared_knowledge = shared_knowledge
        self._listeners: list[Callable[[ProgressEvent], None]] = [on_progress] if on_progress else []
        self._poll_listeners: list[Callable[[Observation, Assessment], None]] = []
        self.detector = Detector(config)
        self._knowledge = knowledge
        self._halted = threading.Event()
        self._lock = threading.RLock()  # one workflow run at a time (watch thread, API threads)
        self._responding = False
        self._history: deque[Observation] = deque(maxlen=config.history_size)
        self._last: tuple[Observation, Assessment] | None = None
        self._ongoing = Ongoing(quiet_polls=max(config.verify_polls, config.consecutive))
        deps = WorkflowDeps(
            probe=probe,
            actions=actions,
            store=self.store,
            detector=self.detector,
            config=config,
            clock=self.clock,
            knowledge=lambda: self._knowledge,
            halted=self._halted.is_set,
            knowledge_dir=knowledge_dir,
            on_learned=self._reload_knowledge,
            chat=chat,
            on_progress=self._progress,
        )
        self.graph = build_workflow(deps, checkpointer)

    def add_progress_listener(self, listener: Callable[[ProgressEvent], None]) -> None:
        """Also tell ``listener`` each step of every incident (the CLI prints them)."""
        self._listeners.append(listener)

    def add_poll_listener(self, listener: Callable[[Observation, Assessment], None]) -> None:
        """Also tell ``listener`` what each poll saw and made of it (the CLI's live line)."""
        self._poll_listeners.append(listener)

    def _progress(self, event: ProgressEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a listener's failure never stops a response
                log.exception("progress listener failed")

    @property
    def knowledge(self) -> KnowledgeBase:
        return self._knowledge

    # --- watching ------------------------------------------------------------------------------------

    def poll_once(self) -> Incident | None:
        """One monitor + detect; a confirmed incident is opened and responded to, unless the fault of an
        earlier unresolved incident still goes on (then that incident is updated: one incident a fault)."""
        with self._lock:
            obs, assessment = self._observe()
            if self._ongoing.incident_id is not None:
                held = self._ongoing.incident_id
                resumed = self._resume_if_due(held, obs, assessment)
                if resumed is not None:
                    return resumed
                note = self._ongoing.see(assessment)
                if note:
                    self._note(held, note)
                if self._ongoing.incident_id is not None:
                    self.detector.reset()
                    return None
                self._close_held(held)
            if not assessment.is_incident or self._awaiting():
                return None
            self.detector.reset()
            incident = self._open(obs, assessment)
            self._ongoing.hold(incident)
            return incident

    def trigger(self) -> Incident | None:
        """Respond now to anything anomalous, confirmed or not (an incident awaiting approval is returned)."""
        with self._lock:
            awaiting = self._awaiting()
            if awaiting:
                return awaiting[0]
            obs, assessment = self._observe()
            if not assessment.anomalous:
                return None
            self.detector.reset()
            return self._open(obs, assessment.model_copy(update={"is_incident": True}))

    def watch(self, stop: threading.Event) -> None:
        """Poll every ``poll_interval_s`` until ``stop`` is set; a failing poll is logged, never fatal."""
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - the watcher outlives any one bad poll
                log.exception("responder poll failed")
            stop.wait(self.config.poll_interval_s)

    # --- incidents -----------------------------------------------------------------------------------

    def approve(self, incident_id: str, *, approver: str) -> Incident:
        return self._decide(incident_id, approved=True, approver=approver)

    def reject(self, incident_id: str, *, approver: str) -> Incident:
        return self._decide(incident_id, approved=False, approver=approver)

    def resume_unfinished(self) -> list[Incident]:
        """Continue every checkpointed incident with steps left (paused ones keep waiting for a human)."""
        resumed: list[Incident] = []
        with self._lock:
            for thread_id in self._threads():
                snapshot = self.graph.get_state(_config(thread_id))
                if not snapshot.next or not snapshot.values.get("incident"):
                    continue
                self.store.take_over(Incident.model_validate(snapshot.values["incident"]))
                if snapshot.interrupts:
                    continue
                log.info("resuming incident %s at %s", thread_id, ", ".join(snapshot.next))
                resumed.append(self._run(thread_id, None))
            # An incident the previous holder held back waits on with this one: its hold still ends.
            waiting = [i for i in self.store.list(limit=100) if i.status == "open" and i.held is not None]
            if waiting and self._ongoing.incident_id is None:
                latest = max(waiting, key=lambda i: i.opened_at)
                self.store.take_over(latest)
                self._ongoing.hold(latest)
        return resumed

    def incident(self, incident_id: str) -> Incident:
        return self.store.get(incident_id)

    # --- kill switch and status ----------------------------------------------------------------------

    def halt(self, *, reason: str = "") -> None:
        self._halted.set()
        self.store.append_audit(
            AuditRecord(at=self.clock.now(), incident_id=None, decision="halted", detail=reason)
        )

    def unhalt(self) -> None:
        self._halted.clear()
        self.store.append_audit(AuditRecord(at=self.clock.now(), incident_id=None, decision="unhalted"))

    @property
    def halted(self) -> bool:
        return self._halted.is_set()

    def status(self) -> ResponderStatus:
        incidents = self.store.list(limit=100)
        last = self._last
        return ResponderStatus(
            state="halted" if self.halted else "responding" if self._responding else "watching",
            halted=self.halted,
            dry_run=self.config.dry_run,
            last_observation=symptoms_of(*last) if last else None,
            last_assessment=last[1] if last else None,
            baseline=self.detector.baseline().model_dump(mode="json"),
            open_incidents=[i.id for i in incidents if i.status == "open"],
            awaiting_approval=[i.id for i in incidents if i.status == "awaiting_approval"],
        )

    # --- internals -----------------------------------------------------------------------------------

    def _observe(self) -> tuple[Observation, Assessment]:
        obs = self.probe.observe()
        if not obs.answered:  # silent: is the process there at all? (the action server knows)
            obs = obs.model_copy(update={"liveness": self.actions.liveness()})
        assessment = self.detector.assess(obs)
        self._history.append(obs)
        self._last = (obs, assessment)
        for listener in list(self._poll_listeners):
            try:
                listener(obs, assessment)
            except Exception:  # noqa: BLE001 - a listener's failure never stops a poll
                log.exception("poll listener failed")
        return obs, assessment

    def _note(self, incident_id: str, message: str) -> None:
        try:
            incident = self.store.get(incident_id)
        except NotFound:
            return
        incident.steps.append(Step(at=self.clock.now(), node="monitor", message=message))
        self.store.save(incident)
        self._progress(
            ProgressEvent(
                incident_id=incident_id, node="monitor", message=message, at=self.clock.now(), status=None
            )
        )

    def _awaiting(self) -> list[Incident]:
        return [i for i in self.store.list(limit=100) if i.status == "awaiting_approval"]

    def _open(self, obs: Observation, assessment: Assessment) -> Incident:
        now = self.clock.now()
        incident_id = f"inc-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        why = "; ".join(assessment.reasons)
        incident = Incident(
            id=incident_id,
            opened_at=now,
            signals=assessment.signals,
            steps=[
                Step(at=obs.timestamp, node="monitor", message=f"polled: health {obs.health_status}"),
                Step(
                    at=now,
                    node="detect",
                    message=f"incident confirmed after {assessment.consecutive} poll(s): {why}",
                ),
            ],
            tools=[
                ToolUse(
                    at=obs.timestamp,
                    node="monitor",
                    tool="probe_target",
                    status="error" if obs.errors else "success",
                )
            ],
        )
        self.store.save(incident)
        self.store.append_audit(AuditRecord(at=now, incident_id=incident_id, decision="opened", detail=why))
        state = {
            "incident_id": incident_id,
            "incident": incident.model_dump(mode="json"),
            "observation": obs.model_dump(mode="json"),
            "history": [o.model_dump(mode="json") for o in self._history],
            "baseline": self.detector.baseline().model_dump(mode="json"),
            "assessment": assessment.model_dump(mode="json"),
            "is_unhealthy": True,
            "polls": 1,
            "tried": [],
            "attempts": 0,
            "execution_results": [],
        }
        # The facade did monitor + detect; the thread starts as if the graph's detect had just run.
        self.graph.update_state(_config(incident_id), state, as_node="detect")
        return self._run(incident_id, None)

    def _decide(self, incident_id: str, *, approved: bool, approver: str) -> Incident:
        with self._lock:
            snapshot = self.graph.get_state(_config(incident_id))
            if not snapshot.interrupts:
                raise Conflict(
                    f"incident {incident_id!r} is not awaiting approval", details={"id": incident_id}
                )
            self.store.take_over(Incident.model_validate(snapshot.values["incident"]))
            incident = self._run(incident_id, Command(resume={"approved": approved, "approver": approver}))
            if self._ongoing.incident_id == incident_id:
                self._ongoing.hold(incident)
            return incident

    def _run(self, incident_id: str, command: Command[Any] | None) -> Incident:
        self._responding = True
        try:
            self.graph.invoke(command, _config(incident_id), durability="sync")
        except IncidentChanged as exc:
            # Another responder took the incident over (this replica's lease lapsed): leave it to that one.
            log.warning("leaving incident %s to the responder that took it over: %s", incident_id, exc)
            self.store.forget(incident_id)
            return self.store.get(incident_id)
        finally:
            self._responding = False
        values = self.graph.get_state(_config(incident_id)).values
        incident = Incident.model_validate(values["incident"])
        self.store.save(incident)  # the checkpoint is the truth (a resumed thread may predate the store)
        if incident.finished and self.record_run is not None:
            self.record_run(incident_run(incident))
        return incident

    def _threads(self) -> list[str]:
        seen: dict[str, None] = {}
        for item in self.checkpointer.list(None):
            thread_id = item.config.get("configurable", {}).get("thread_id")
            if isinstance(thread_id, str):
                seen.setdefault(thread_id, None)
        return list(seen)

    def refresh_knowledge(self) -> list[str]:
        """Write the documents other replicas learned into this one's knowledge folder and read it again
        (a new lease holder does this first); the ids written."""
        if self.shared_knowledge is None or self.knowledge_dir is None:
            return []
        written = self.shared_knowledge.pull(self.knowledge_dir)
        if written:
            self._reload_knowledge(None)
        return written

    def _reload_knowledge(self, learned: Document | None) -> None:
        if learned is not None and learned.path is not None and self.shared_knowledge is not None:
            try:
                self.shared_knowledge.publish(learned, learned.path.read_text(encoding="utf-8"))
            except Exception:  # noqa: BLE001 - learned here all the same; shared when the database is back
                log.exception("sharing learned document %s failed", learned.id)
        if self.knowledge_dir is not None:
            self._knowledge = KnowledgeBase.load(
                self.knowledge_dir, extra=self.extra_knowledge, retrieval=self._knowledge.retrieval
            )


def _config(incident_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": incident_id}}
