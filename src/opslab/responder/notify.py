"""Notifications: a Slack-compatible webhook told when an incident opens, waits for an approval, resolves or
escalates. A webhook that is down never stops the responder: the failure is logged and the incident goes on.
"""

from __future__ import annotations

import logging

import httpx

from opslab.egress import post_webhook
from opslab.responder.model import IncidentStatus, ProgressEvent

log = logging.getLogger("opslab.responder")
TITLES: dict[IncidentStatus, str] = {
    "open": "opened",
    "awaiting_approval": "is waiting for an approval",
    "resolved": "resolved",
    "escalated": "escalated to a human",
}


class WebhookNotifier:
    """``on_progress`` for the responder: one POST ``{"text": …}`` per change of an incident's status."""

    def __init__(
        self, url: str, *, timeout_s: float = 3.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url, self.timeout_s = url, timeout_s
        self._client = httpx.Client(timeout=timeout_s, transport=transport)
        self._last: dict[str, IncidentStatus] = {}

    def __call__(self, event: ProgressEvent) -> None:
        status = event.status
        if status is None or self._last.get(event.incident_id) == status:
            return
        self._last[event.incident_id] = status
        text = (
            f"opslab responder: incident {event.incident_id} {TITLES[status]} ({event.node}: {event.message})"
        )
        body = {"text": text, "incident_id": event.incident_id, "status": status, "node": event.node}
        failure = post_webhook(self.url, body, timeout_s=self.timeout_s, client=self._client)
        if failure:
            log.warning("webhook %s failed: %s", self.url, failure)

    def close(self) -> None:
        self._client.close()
