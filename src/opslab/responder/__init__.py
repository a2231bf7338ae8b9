"""The autonomous responder: watch a target, detect incidents from symptoms alone, diagnose them with
rules, retrieval and an optional LLM, act through an action server, verify, and learn.

Pure domain: I/O comes in through the Protocols of ``ports`` (HTTP adapters in ``probe`` and
``actions``); the workflow is a LangGraph graph checkpointed per incident.
"""

from typing import TYPE_CHECKING

from opslab.lazy import lazy_exports

if TYPE_CHECKING:
    from opslab.responder.actions import HttpActionExecutor
    from opslab.responder.changes import CanaryHolds, WithExperiments
    from opslab.responder.commands import COMMAND, Command, Outcome, command_work
    from opslab.responder.config import ResponderConfig
    from opslab.responder.detect import Baseline, Detector, check
    from opslab.responder.diagnose import Diagnoser, score_rules
    from opslab.responder.evidence import gather_evidence, symptoms_text
    from opslab.responder.investigate import Investigation, investigate
    from opslab.responder.learn import incident_document, learn_incident
    from opslab.responder.model import (
        CATEGORIES,
        INCIDENT_SCHEMA_VERSION,
        ActionResult,
        ActionSpec,
        AgentState,
        Assessment,
        AuditRecord,
        Category,
        Diagnosis,
        Evidence,
        Hold,
        Incident,
        IncidentStatus,
        PlannedAction,
        ProgressEvent,
        ResponderStatus,
        Signal,
        Step,
        ToolUse,
    )
    from opslab.responder.nodes import WorkflowDeps, symptoms_of
    from opslab.responder.notify import WebhookNotifier
    from opslab.responder.observation import Check, Liveness, LogLine, Observation, PoolStatus
    from opslab.responder.plan import PlanDecision, plan_next
    from opslab.responder.ports import (
        ActionExecutor,
        Chat,
        Clock,
        IncidentChanged,
        IncidentStore,
        InMemoryIncidentStore,
        SharedKnowledge,
        SystemClock,
        TargetProbe,
    )
    from opslab.responder.probe import HttpTargetProbe
    from opslab.responder.responder import Responder
    from opslab.responder.telemetry import AGENT_NAME, incident_run
    from opslab.responder.views import (
        AgentStatus,
        Approval,
        AuditList,
        IncidentList,
        IncidentSummary,
        KillSwitch,
        TriggerResult,
    )
    from opslab.responder.workflow import NODES, build_workflow
else:
    __getattr__ = lazy_exports(__name__)

__all__ = [
    "COMMAND",
    "Command",
    "Outcome",
    "command_work",
    "AgentStatus",
    "CanaryHolds",
    "WithExperiments",
    "Hold",
    "Approval",
    "AuditList",
    "IncidentList",
    "IncidentSummary",
    "KillSwitch",
    "TriggerResult",
    "AGENT_NAME",
    "CATEGORIES",
    "INCIDENT_SCHEMA_VERSION",
    "NODES",
    "WebhookNotifier",
    "ActionExecutor",
    "ActionResult",
    "ActionSpec",
    "AgentState",
    "Assessment",
    "AuditRecord",
    "Baseline",
    "Category",
    "Chat",
    "Check",
    "Clock",
    "Detector",
    "Diagnoser",
    "Diagnosis",
    "Evidence",
    "HttpActionExecutor",
    "HttpTargetProbe",
    "InMemoryIncidentStore",
    "Incident",
    "IncidentChanged",
    "IncidentStatus",
    "IncidentStore",
    "Investigation",
    "Liveness",
    "LogLine",
    "Observation",
    "PlanDecision",
    "PlannedAction",
    "PoolStatus",
    "ProgressEvent",
    "Responder",
    "ResponderConfig",
    "ResponderStatus",
    "SharedKnowledge",
    "Signal",
    "Step",
    "SystemClock",
    "TargetProbe",
    "ToolUse",
    "WorkflowDeps",
    "symptoms_of",
    "build_workflow",
    "check",
    "gather_evidence",
    "incident_document",
    "incident_run",
    "investigate",
    "learn_incident",
    "plan_next",
    "score_rules",
    "symptoms_text",
]
