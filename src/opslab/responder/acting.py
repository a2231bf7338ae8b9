"""The acting half of the workflow: plan the next action, execute it (pausing for approval, honouring
the kill switch), verify the recovery, then learn from it or escalate. ``workflow.py`` wires these
nodes with the sensing ones into the graph.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from langgraph.types import interrupt

from opslab.responder.config import ResponderConfig
from opslab.responder.detect import check
from opslab.responder.learn import learn_incident
from opslab.responder.model import ActionResult, AgentState, Hold, Incident, PlannedAction
from opslab.responder.nodes import NodeKit, State
from opslab.responder.observation import Observation
from opslab.responder.plan import plan_next
from opslab.responder.precondition import still_holds

# What an action must never bring about where it was not before: the target failing, silent or gone.
WORSE = frozenset({"unreachable", "unresponsive", "hung", "health", "error_rate"})
SILENT = frozenset({"unreachable", "unresponsive", "hung"})


def verify_rounds(config: ResponderConfig, window_s: float | None) -> int:
    """Polls a verification may take: ``verify_polls`` clean ones in a row, once the target's metrics
    window (which it reports) no longer holds requests from before the action."""
    stale_s = max(0.0, (window_s or 0.0) - config.settle_s)
    return config.verify_polls + 1 + math.ceil(stale_s / max(config.verify_interval_s, 0.1))


def slow_only_on_a_busy_host(
    server: dict[str, Any], seen: list[Observation], clean: int, config: ResponderConfig
) -> bool:
    """The action server's verdict failed only on its absolute p95 bound, while every core of the host is
    busy and the responder's own checks (against its baseline, with the busy host set aside) were clean:
    the host is slow, the target recovered."""
    error_rate = server.get("error_rate")
    return (
        clean >= config.verify_polls
        and server.get("status") == "healthy"
        and isinstance(error_rate, int | float)
        and error_rate <= 5.0
        and bool(seen)
        and seen[-1].host_busy()
    )


def replaced_then_gone(before: Observation, seen: list[Observation]) -> str | None:
    """The action replaced the target's process (another pid than before it), and that new process has
    exited since: what to say of it, or None."""
    if not seen:
        return None
    last = seen[-1]
    old = before.pid or (before.liveness.pid if before.liveness else None)
    live = last.liveness
    if old is None or live is None or live.pid is None or live.pid == old or live.alive is not False:
        return None
    return f"the action replaced process {old} with {live.pid}, which has since exited (a new fault)"


class ActingNodes(NodeKit):
    def plan(self, state: AgentState) -> State:
        inc = self.incident(state)
        kb = self.deps.knowledge()
        diagnosis = self.diagnosis(state)
        runbook = (
            kb.get(diagnosis.runbook_id) if diagnosis.runbook_id and diagnosis.runbook_id in kb else None
        )
        similar = [kb.get(i) for i in diagnosis.similar_incidents if i in kb]
        catalog = self.deps.actions.catalog()
        self.tool(inc, "plan", "action_catalog", ok=bool(catalog), detail=f"{len(catalog)} actions")
        decision = plan_next(
            diagnosis=diagnosis,
            runbook=runbook,
            similar=similar,
            catalog=catalog,
            tried=list(state.get("tried", [])),
            executed=len(inc.actions),
            last_run=self._last_runs(),
            now=self.now(),
            config=self.deps.config,
            waited=list(state.get("waited", [])),
            hard=self.assessment(state).hard,
        )
        if decision.action is None and decision.hold is not None:
            inc.held = Hold(
                reason=decision.hold,
                action=decision.held_action,
                since=self.now(),
                until=decision.retry_at,
                detail=decision.reason,
            )
            inc.recommendation = decision.reason
            self.audit(inc, "deferred", decision.reason)
            waited = list(state.get("waited", []))
            if decision.hold == "confirm" and decision.held_action:
                waited.append(decision.held_action)
            return {
                "incident": self.step(inc, "plan", f"holding: {decision.reason}"),
                "outcome": "deferred",
                "recommendation": decision.reason,
                "next_action": None,
                "waited": waited,
            }
        worse = state.get("worse_category")
        if worse is not None and worse == diagnosis.category:
            # The last action made this very problem worse: nothing more is tried on it.
            why = f"{state.get('recommendation') or 'the last action left the target worse'}: stopping"
            self.audit(inc, "no_action", why)
            return {
                "incident": self.step(inc, "plan", why),
                "outcome": "exhausted",
                "recommendation": why,
                "next_action": None,
                "worse_category": None,
            }
        if decision.action is None:
            if worse is not None:  # a new problem showed after an action that made things worse
                decision = decision.model_copy(
                    update={"reason": f"{state.get('recommendation')}; then {decision.reason}"}
                )
            self.audit(inc, "no_action", decision.reason)
            return {
                "incident": self.step(inc, "plan", decision.reason),
                "outcome": "exhausted",
                "recommendation": decision.reason,
                "next_action": None,
            }
        action = decision.action
        plan = [a.model_dump(mode="json") for a in [action, *decision.remaining]]
        if self.deps.config.dry_run:
            why = f"dry run: would run {action.key} ({action.risk} risk); {decision.reason}"
            self.audit(inc, "planned", why, action=action.name, params=action.params)
            return {
                "incident": self.step(inc, "plan", why),
                "outcome": "dry_run",
                "recommendation": why,
                "action_plan": plan,
                "next_action": None,
            }
        self.audit(inc, "planned", decision.reason, action=action.name, params=action.params)
        status = None
        if decision.needs_approval:
            inc.pending_action = action
            status = "awaiting_approval"
            self.audit(
                inc,
                "approval_required",
                f"{action.key} is {action.risk} risk",
                action=action.name,
                params=action.params,
            )
        return {
            "incident": self.step(inc, "plan", decision.reason, status=status),  # type: ignore[arg-type]
            "worse_category": None,
            "outcome": "planned",
            "action_plan": plan,
            "next_action": action.model_dump(mode="json"),
            "needs_approval": decision.needs_approval,
        }

    def execute(self, state: AgentState) -> State:
        action = PlannedAction.model_validate(state["next_action"])
        if state.get("needs_approval"):
            # Nothing happens before this line: on resume LangGraph re-runs the node up to here.
            answer: Any = interrupt(
                {"incident_id": state["incident_id"], "action": action.model_dump(mode="json")}
            )
            inc = self.incident(state)
            inc.pending_action = None
            approver = str(answer.get("approver", "?")) if isinstance(answer, dict) else "?"
            if not (isinstance(answer, dict) and answer.get("approved") is True):
                why = f"{action.key} rejected by {approver}"
                self.audit(inc, "rejected", why, action=action.name, params=action.params)
                return {
                    "incident": self.step(inc, "execute", why, status="open"),
                    "outcome": "rejected",
                    "recommendation": why,
                    "needs_approval": False,
                }
            self.audit(
                inc,
                "approved",
                f"{action.key} approved by {approver}",
                action=action.name,
                params=action.params,
            )
            inc.status = "open"
        else:
            inc = self.incident(state)
        if self.deps.halted():
            why = (
                f"kill switch on: {action.key} not executed; acting when it is released if the fault goes on"
            )
            inc.held = Hold(reason="kill_switch", action=action.key, since=self.now(), detail=why)
            inc.recommendation = why
            self.audit(inc, "halted", why, action=action.name, params=action.params)
            return {
                "incident": self.step(inc, "execute", f"holding: {why}"),
                "outcome": "deferred",
                "recommendation": why,
                "needs_approval": False,
            }
        tried = list(state.get("tried", []))
        attempt = len(tried) + 1
        key = f"{inc.id}:{attempt}:{action.key}"
        done = self.deps.actions.recorded(key)
        if done is not None:
            # This step ran before (another replica, or this one before a crash): what it did stands.
            return self._executed(state, inc, action, done, attempt, note="read back: it ran before")
        fresh = self.observe()
        self.tool(inc, "execute", "probe_target", ok=not fresh.errors, detail="; ".join(fresh.errors))
        holds, why = still_holds(
            self.diagnosis(state).category, fresh, self.history(state), self.baseline(state), self.deps.config
        )
        if not holds:
            message = f"{action.key} not executed: precondition failed: {why}"
            self.audit(inc, "precondition_failed", why, action=action.name, params=action.params)
            return {
                "incident": self.step(inc, "execute", message),
                "outcome": "precondition_failed",
                "needs_approval": False,
            }
        result = self.deps.actions.execute(action.name, action.params, key=key)
        return self._executed(state, inc, action, result, attempt)

    def _executed(
        self,
        state: AgentState,
        inc: Incident,
        action: PlannedAction,
        result: ActionResult,
        attempt: int,
        note: str = "",
    ) -> State:
        tried = list(state.get("tried", []))
        result = result.model_copy(update={"attempt": attempt, "risk": action.risk})
        if note:
            result = result.model_copy(update={"detail": f"{result.detail} ({note})".strip()})
        inc.actions.append(result)
        self.tool(
            inc,
            "execute",
            f"action:{action.name}",
            ok=result.status == "success",
            args=dict(action.params),
            detail=result.detail,
        )
        self.audit(
            inc, "executed", f"{result.status}: {result.detail}", action=action.name, params=action.params
        )
        return {
            "incident": self.step(inc, "execute", f"{action.key}: {result.status} {result.detail}".strip()),
            "tried": [*tried, action.key],
            "execution_results": [*state.get("execution_results", []), result.model_dump(mode="json")],
            "outcome": "executed" if result.status == "success" else "action_failed",
            "needs_approval": False,
        }

    def verify(self, state: AgentState) -> State:
        inc = self.incident(state)
        cfg = self.deps.config
        self.deps.clock.sleep(cfg.settle_s)
        baseline = self.baseline(state)
        seen: list[Observation] = []
        problems: list[str] = []
        still: list[str] = []
        clean = 0
        for i in range(verify_rounds(cfg, self.observation(state).metrics_window_s)):
            if i:
                self.deps.clock.sleep(cfg.verify_interval_s)
            obs = self.observe()
            self.tool(inc, "verify", "probe_target", ok=not obs.errors, detail="; ".join(obs.errors))
            signals, reasons = check(obs, baseline, cfg, seen)
            seen.append(obs)
            if signals:  # the metrics window may still hold requests from before the fix: look again
                clean, problems, still = 0, list(reasons), list(signals)
            else:
                clean, problems, still = clean + 1, [], []
                if clean >= cfg.verify_polls:
                    break
        server = self.deps.actions.verify()
        healthy = server.get("is_healthy") is True or slow_only_on_a_busy_host(server, seen, clean, cfg)
        self.tool(inc, "verify", "verify_target_health", ok=healthy, detail=str(server)[:300])
        if not healthy:
            problems.append(
                f"action server: target not healthy ({server.get('status', server.get('error'))})"
            )
        resolved = not problems and clean >= cfg.verify_polls
        attempts = int(state.get("attempts", 0)) + 1
        inc.attempts = attempts
        before = set(self.assessment(state).signals)
        acted = state.get("outcome") == "executed"
        replaced = replaced_then_gone(self.observation(state), seen) if acted and not resolved else None
        if replaced is not None:
            # The action did its job (a new process answered) and that process died since: a new fault,
            # for an incident of its own, not this action leaving the target worse.
            resolved, problems, still = True, [], []
        elif acted and not resolved and before and before <= SILENT and seen and seen[-1].answered:
            # The incident was for a target that did not answer; it answers again. What it shows now is
            # another fault, for an incident of its own.
            replaced = f"the target answers again; what it shows now ({', '.join(still)}) is another fault"
            resolved, problems, still = True, [], []
        worse = sorted((set(still) - before) & WORSE) if acted and not resolved else []
        message = "recovered" if resolved else "not recovered: " + "; ".join(problems)
        if replaced is not None:
            message = f"recovered: {replaced}"
        if worse:
            last = inc.actions[-1].action if inc.actions else "the last action"
            message = f"{last} left the target worse ({', '.join(worse)} now, not before); " + message
        self.audit(inc, "verified" if resolved else "not_recovered", message)
        history = [*state.get("history", []), *(o.model_dump(mode="json") for o in seen)]
        return {
            "incident": self.step(inc, "verify", message),
            "is_resolved": resolved,
            "attempts": attempts,
            "observation": seen[-1].model_dump(mode="json"),
            "history": history[-cfg.history_size :],
            "recommendation": "" if resolved else message,
            "verify_signals": still,
            "verify_reasons": problems,
            "verify_worse": bool(worse),
            # What the action was for: a re-diagnosis that finds the same problem stops there.
            "worse_category": inc.category if worse else None,
        }

    def learn(self, state: AgentState) -> State:
        inc = self.incident(state)
        inc.status, inc.resolved_at, inc.pending_action = "resolved", self.now(), None
        worked = [a for a in inc.actions if a.status == "success"][-1:]
        inc.recommendation = f"resolved by {worked[0].action}" if worked else "resolved"
        message = inc.recommendation
        folder = self.deps.knowledge_dir
        if folder is not None:
            symptoms = self.assessment(state).reasons
            doc, error = self.safe_learn(
                lambda: learn_incident(inc, symptoms=symptoms, evidence=self.evidence(state), folder=folder)
            )
            if doc is not None:
                inc.learned_document = doc.id
                if self.deps.on_learned is not None:
                    self.deps.on_learned(doc)
                self.audit(inc, "learned", f"wrote {doc.id}")
                message += f"; learned {doc.id}"
            else:
                message += f"; not learned ({error})"
        self.audit(inc, "resolved", message)
        return {
            "incident": self.step(inc, "learn", message),
            "is_resolved": True,
            "outcome": "resolved",
            "recommendation": inc.recommendation,
        }

    def escalate(self, state: AgentState) -> State:
        inc = self.incident(state)
        inc.pending_action = None
        inc.recommendation = str(state.get("recommendation") or "escalated to a human")
        self.audit(inc, "escalated", inc.recommendation)
        return {
            "incident": self.step(inc, "escalate", inc.recommendation, status="escalated"),
            "outcome": "escalated",
        }

    def _last_runs(self) -> dict[str, datetime]:
        last: dict[str, datetime] = {}
        for record in self.deps.store.audit():
            if record.decision == "executed" and record.action:
                last[record.action] = max(record.at, last.get(record.action, record.at))
        return last
