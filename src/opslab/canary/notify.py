"""Webhook notifications (Slack-compatible: a JSON body with ``text``) on a verdict, on an interruption and
on a failure to restore the baseline. A notification that cannot be delivered is a warning in the
summary, never a change of verdict."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, JsonValue

from opslab.canary.strict import Strict, check_env_refs
from opslab.egress import post_webhook

Event = Literal["verdict", "interrupted", "restore_failed"]
EVENTS: tuple[Event, ...] = ("verdict", "interrupted", "restore_failed")


class NotifySpec(Strict):
    webhook_url: Annotated[str, AfterValidator(check_env_refs)] = Field(
        description="Where to POST (a Slack incoming webhook works); ${ENV_VAR} is read at run time."
    )
    on: list[Event] = Field(default_factory=lambda: list(EVENTS), min_length=1)
    timeout_s: float = Field(default=5.0, gt=0, le=60)


def send_webhook(
    url: str, event: Event, text: str, fields: dict[str, JsonValue], *, timeout_s: float
) -> str | None:
    """POST ``{"text", "event", "canary"}``; on failure a warning saying why."""
    failure = post_webhook(url, {"text": text, "event": event, "canary": fields}, timeout_s=timeout_s)
    return f"webhook not delivered ({event}): {failure}" if failure else None
