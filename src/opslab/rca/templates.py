"""Words for each category: hypothesis, verification steps and action items. Deterministic, no model."""

from __future__ import annotations

from dataclasses import dataclass

from opslab.rca.model import ActionItem, Category


@dataclass(frozen=True)
class Template:
    title: str
    description: str
    verification_steps: tuple[str, ...]
    actions: tuple[ActionItem, ...]


def _a(type_: str, title: str, description: str, priority: str) -> ActionItem:
    return ActionItem.model_validate(
        {"type": type_, "title": title, "description": description, "priority": priority}
    )


TEMPLATES: dict[Category, Template] = {
    "tool_schema_mismatch": Template(
        "Tool Schema Mismatch Root Cause",
        "Tool call failed due to schema validation error: the arguments the agent sent do not match what the "
        "tool's API now requires.",
        (
            "Review tool call logs for detailed error traces",
            "Check external service status and API documentation",
            "Compare the agent's tool schema with the tool's current contract",
        ),
        (
            _a(
                "code_change",
                "Update tool schema validation",
                "Review and update tool argument schemas to match current API contract; "
                "validate arguments before calling the tool.",
                "high",
            ),
            _a(
                "monitoring",
                "Alert on tool validation errors",
                "Count 400/422 responses per tool and alert when a deployment makes them jump.",
                "medium",
            ),
        ),
    ),
    "rate_limited": Template(
        "Rate Limiting Root Cause",
        "The tool or model provider refused calls with HTTP 429 / rate-limit errors, so the agent could not "
        "complete its plan.",
        (
            "Check the provider's rate-limit headers and quota usage at the time of the run",
            "Correlate with concurrent runs of the same agent",
        ),
        (
            _a(
                "code_change",
                "Add backoff with jitter on 429",
                "Retry rate-limited calls with exponential backoff and jitter, honouring Retry-After.",
                "high",
            ),
            _a(
                "config_change",
                "Raise quota or lower concurrency",
                "Request a higher quota or cap concurrent agent runs per key.",
                "medium",
            ),
        ),
    ),
    "tool_permission": Template(
        "Tool Permission Root Cause",
        "The tool rejected the agent's credentials (401/403): the agent is not allowed to perform this call.",
        (
            "Check the credentials and scopes the agent used for this tool",
            "Look for recently rotated keys or changed permissions",
        ),
        (
            _a(
                "config_change",
                "Fix tool credentials and scopes",
                "Grant the agent's identity the scopes this call needs, "
                "or stop the agent from attempting it.",
                "high",
            ),
            _a(
                "monitoring",
                "Alert on authorization failures",
                "Alert on 401/403 rates per tool and agent.",
                "medium",
            ),
        ),
    ),
    "timeout": Template(
        "Timeout Root Cause",
        "A tool call or step exceeded its time limit, so the run could not finish.",
        (
            "Compare the call's latency with its timeout and the tool's usual latency",
            "Check the downstream service's health during the run",
        ),
        (
            _a(
                "config_change",
                "Tune timeouts and add retries",
                "Set timeouts from observed latency percentiles and retry idempotent calls once.",
                "high",
            ),
            _a(
                "monitoring",
                "Track tool latency percentiles",
                "Alert when p95 latency approaches the timeout.",
                "medium",
            ),
        ),
    ),
    "planner_loop": Template(
        "Planner Loop Root Cause",
        "The agent repeated the same step or tool call many times without progress: its plan looped.",
        (
            "Inspect the repeated calls' arguments and results for a condition the planner never satisfies",
            "Check the loop guard / max-iterations setting",
        ),
        (
            _a(
                "code_change",
                "Add a loop guard",
                "Stop or re-plan after N identical calls, and surface the last error to the planner.",
                "high",
            ),
            _a(
                "monitoring",
                "Alert on retry storms",
                "Alert when a step's retries reach 3 or more.",
                "medium",
            ),
        ),
    ),
    "retrieval_empty": Template(
        "Empty Retrieval Root Cause",
        "A retrieval or search tool returned nothing, and the agent had no grounding to continue.",
        (
            "Re-run the query against the index and check its coverage",
            "Check whether the index was rebuilt or emptied recently",
        ),
        (
            _a(
                "code_change",
                "Handle empty retrieval explicitly",
                "Reformulate the query or ask the user when retrieval returns no results.",
                "high",
            ),
            _a(
                "monitoring",
                "Track empty-result rates",
                "Alert on the share of retrievals returning nothing.",
                "medium",
            ),
        ),
    ),
    "prompt_regression": Template(
        "Prompt Regression Root Cause",
        "This agent version fails significantly more often than the previous one: a prompt or model change "
        "regressed its behaviour.",
        (
            "Diff the prompts and model settings between the two versions",
            "Replay failed runs of this version against the previous one",
        ),
        (
            _a(
                "process",
                "Roll back or canary the new version",
                "Route traffic back to the previous version and compare both in an A/B experiment.",
                "high",
            ),
            _a(
                "code_change",
                "Add regression evals",
                "Gate releases on an eval suite covering these failures.",
                "medium",
            ),
        ),
    ),
    "unknown": Template(
        "Unclassified Failure",
        "The run failed with specific symptoms that match no known failure pattern.",
        (
            "Replay the run's timeline around the cited evidence",
            "Compare with successful runs of the same agent",
        ),
        (
            _a(
                "investigation",
                "Investigate the cited failure",
                "Start from the earliest cited evidence.",
                "medium",
            ),
            _a(
                "code_change",
                "Add structured error codes",
                "Implement error code taxonomy to enable better classification in future RCAs.",
                "medium",
            ),
        ),
    ),
}

INSUFFICIENT_ACTIONS = (
    _a(
        "monitoring",
        "Enable detailed tracing",
        "Add structured logging and tracing to capture more diagnostic information.",
        "high",
    ),
    _a(
        "code_change",
        "Add structured error codes",
        "Implement error code taxonomy to enable better classification in future RCAs.",
        "medium",
    ),
)
INSUFFICIENT_VERIFICATION = (
    "Capture tool calls with their arguments, status codes and error messages",
    "Record the error type and a specific error message when a run fails",
)
