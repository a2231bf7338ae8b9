"""The incident workflow as a LangGraph ``StateGraph`` over ``AgentState`` (the seed's nine steps):

    START -> monitor -> detect --confirmed--> gather -> diagnose -> investigate -> plan
                ^          |--anomalous, not yet confirmed (poll again after the interval)
                +----------+          healthy --> END
    plan    -> execute | escalate (nothing left, dry run) | END (held: a cooldown, a confirmation wait)
    execute -> verify | plan (the action failed) | escalate (rejected) | END (held: the kill switch)
               (a high-risk action pauses here with ``interrupt()``; ``Command(resume=...)`` goes on)
    verify  -> learn (resolved) | plan (another approach, up to max_attempts) | escalate
    learn   -> END;  escalate -> END

A held incident (``Incident.held``) ends its thread open; the responder puts the thread back at
``detect`` when the hold ends and the fault is still there, so the same incident acts then.

The compiled graph checkpoints after every step under ``thread_id = incident id``: a process killed
mid-incident is resumed with ``graph.invoke(None, config)`` from the step it was in. Actions carry an
idempotency key made of the incident, the attempt number and the action, so a repeated ``execute``
acts once.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from opslab.responder.acting import ActingNodes
from opslab.responder.diagnose import Diagnoser
from opslab.responder.evidence import gather_evidence, symptoms_text
from opslab.responder.investigate import investigate
from opslab.responder.llm import llm_diagnosis
from opslab.responder.model import AgentState
from opslab.responder.nodes import NodeKit, State, WorkflowDeps, symptoms_of

NODES = ("monitor", "detect", "gather", "diagnose", "investigate", "plan", "execute", "verify", "learn")


class SensingNodes(NodeKit):
    def monitor(self, state: AgentState) -> State:
        polls = int(state.get("polls", 0))
        if polls > 0:
            self.deps.clock.sleep(self.deps.config.poll_interval_s)
        obs = self.observe()
        history = [*state.get("history", []), obs.model_dump(mode="json")][-self.deps.config.history_size :]
        update: State = {"observation": obs.model_dump(mode="json"), "history": history, "polls": polls + 1}
        if state.get("incident"):
            inc = self.incident(state)
            self.tool(inc, "monitor", "probe_target", ok=not obs.errors, detail="; ".join(obs.errors))
            update["incident"] = self.step(inc, "monitor", f"polled: health {obs.health_status}")
        return update

    def detect(self, state: AgentState) -> State:
        assessment = self.deps.detector.assess(self.observation(state))
        if assessment.is_incident:
            self.deps.detector.reset()
        return {
            "assessment": assessment.model_dump(mode="json"),
            "is_unhealthy": assessment.is_incident,
            "baseline": self.deps.detector.baseline().model_dump(mode="json"),
        }

    def gather(self, state: AgentState) -> State:
        inc = self.incident(state)
        obs, assessment = self.observation(state), self.assessment(state)
        if state.get("verify_signals"):
            # Back from a verification that found other symptoms than those diagnosed: diagnose those.
            assessment = assessment.model_copy(
                update={
                    "signals": list(state.get("verify_signals", [])),
                    "reasons": list(state.get("verify_reasons", [])),
                }
            )
        evidence = gather_evidence(obs, self.history(state), self.baseline(state))
        return {
            "assessment": assessment.model_dump(mode="json"),
            "verify_signals": [],
            "incident": self.step(inc, "gather", f"{len(evidence)} evidence items"),
            "symptoms": symptoms_of(obs, assessment),
            "evidence": [e.model_dump(mode="json") for e in evidence],
            "tried": list(state.get("tried", [])),
            "attempts": int(state.get("attempts", 0)),
        }

    def diagnose(self, state: AgentState) -> State:
        inc = self.incident(state)
        kb = self.deps.knowledge()
        evidence = self.evidence(state)
        query = symptoms_text(evidence, self.assessment(state).reasons)
        diagnosis, hits = Diagnoser(kb, self.deps.config).diagnose(
            self.observation(state), evidence, self.baseline(state), query
        )
        hit_ids = ", ".join(h.document.id for h in hits)
        self.tool(inc, "diagnose", "knowledge_search", args={"query": query[:300]}, detail=hit_ids)
        if self.deps.chat is not None:
            diagnosis = llm_diagnosis(self.deps.chat, diagnosis, evidence, hits, kb)
            self.tool(inc, "diagnose", "llm", ok=diagnosis.source == "llm", detail=diagnosis.notes[-1])
        inc.diagnosis, inc.category, inc.confidence = diagnosis, diagnosis.category, diagnosis.confidence
        if diagnosis.category not in inc.categories:
            inc.categories.append(diagnosis.category)
        detail = f"{diagnosis.category} ({diagnosis.confidence:.2f}, {diagnosis.source}): {diagnosis.summary}"
        self.audit(inc, "diagnosed", detail)
        return {
            "incident": self.step(inc, "diagnose", detail),
            "diagnosis": diagnosis.summary,
            "confidence": diagnosis.confidence,
            "diagnosis_detail": diagnosis.model_dump(mode="json"),
        }

    def investigate(self, state: AgentState) -> State:
        inc = self.incident(state)
        diagnosis = self.diagnosis(state)
        found = investigate(self.observation(state), self.history(state), self.baseline(state), diagnosis)
        diagnosis = diagnosis.model_copy(update={"root_cause": found.root_cause})
        inc.diagnosis, inc.root_cause = diagnosis, found.root_cause
        return {
            "incident": self.step(inc, "investigate", found.root_cause),
            "root_cause": found.root_cause,
            "diagnosis_detail": diagnosis.model_dump(mode="json"),
            "evidence": [*state.get("evidence", []), *(e.model_dump(mode="json") for e in found.evidence)],
        }


class IncidentWorkflow(SensingNodes, ActingNodes):
    # --- routing -------------------------------------------------------------------------------------

    @staticmethod
    def after_detect(state: AgentState) -> Literal["gather", "monitor", "__end__"]:
        assessment = state.get("assessment") or {}
        if assessment.get("is_incident"):
            return "gather"
        return "monitor" if assessment.get("signals") else "__end__"

    @staticmethod
    def after_plan(state: AgentState) -> Literal["execute", "escalate", "__end__"]:
        if state.get("outcome") == "deferred":
            return "__end__"
        return "execute" if state.get("next_action") else "escalate"

    @staticmethod
    def after_execute(state: AgentState) -> Literal["verify", "plan", "escalate", "__end__"]:
        outcome = state.get("outcome")
        if outcome in ("executed", "precondition_failed"):
            return "verify"
        if outcome == "deferred":
            return "__end__"
        return "plan" if outcome == "action_failed" else "escalate"

    def after_verify(self, state: AgentState) -> Literal["learn", "plan", "gather", "escalate"]:
        """Not resolved: plan again with a different approach; when the symptoms changed (the action fixed
        one problem and a second shows), gather and diagnose again first. Symptoms the action seems to
        have made worse are diagnosed too: the same problem again stops the plan (``plan``); another one
        (a fault from outside arriving meanwhile) is a problem of its own."""
        if state.get("is_resolved"):
            return "learn"
        if state.get("verify_worse"):
            return "gather"
        if int(state.get("attempts", 0)) >= self.deps.config.max_attempts:
            return "escalate"
        before = set((state.get("assessment") or {}).get("signals") or [])
        now = set(state.get("verify_signals") or [])
        return "gather" if now and now != before else "plan"


def build_workflow(
    deps: WorkflowDeps, checkpointer: BaseCheckpointSaver[Any] | None
) -> CompiledStateGraph[AgentState, None, AgentState, AgentState]:
    wf = IncidentWorkflow(deps)
    graph: StateGraph[AgentState, None, AgentState, AgentState] = StateGraph(AgentState)
    for name in (*NODES, "escalate"):
        graph.add_node(name, getattr(wf, name))
    graph.add_edge(START, "monitor")
    graph.add_edge("monitor", "detect")
    graph.add_conditional_edges("detect", wf.after_detect, ["gather", "monitor", END])
    graph.add_edge("gather", "diagnose")
    graph.add_edge("diagnose", "investigate")
    graph.add_edge("investigate", "plan")
    graph.add_conditional_edges("plan", wf.after_plan, ["execute", "escalate", END])
    graph.add_conditional_edges("execute", wf.after_execute, ["verify", "plan", "escalate", END])
    graph.add_conditional_edges("verify", wf.after_verify, ["learn", "plan", "gather", "escalate"])
    graph.add_edge("learn", END)
    graph.add_edge("escalate", END)
    return graph.compile(checkpointer=checkpointer)
