"""The action server: a typed catalog of remediations (JSON Schema params), bearer-token auth,
idempotency keys and an append-only audit; restarts go through the ``Processes`` port (the supervisor)."""

from opslab.sandbox.actions.app import create_action_app, verify_target_health
from opslab.sandbox.actions.catalog import ACTION_NAMES, Processes
from opslab.sandbox.actions.ledger import ActionResult, AuditRecord

__all__ = [
    "ACTION_NAMES",
    "ActionResult",
    "AuditRecord",
    "Processes",
    "create_action_app",
    "verify_target_health",
]
