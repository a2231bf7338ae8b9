"""Webhook notifications (Slack-compatible: a JSON body with ``text``) on a verdict, on an interruption and
on a failure to restore the baseline. A notification that cannot be delivered is a warning in the
summary, never a change of verdict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import httpx
from pydantic import AfterValidator, Field, JsonValue

from opslab.canary.strict import Strict, check_env_refs

Event = Literal["verdict", "interrupted", "restore_failed"]
EVENTS: tuple[Event, ...] = ("verdict", "interrupted", "restore_failed")


class NotifySpec(Strict):
    webhook_url: Annotated[str, AfterValidator(check_env_refs)] = Field(
        description="Where to POST (a Slack incoming webhook works); ${ENV_VAR} is read at run time."
    )
    on: list[Event] = Field(default_factory=lambda: list(EVENTS), min_length=1)
    timeout_s: float = Field(default=5.0, gt=0, le=60)


def send_webhook(
    url: str,
    event: Event,
    text: str,
    fields: dict[str, JsonValue],
    *,
    timeout_s: float,
    redact: Callable[[str], str],
) -> str | None:
    """POST ``{"text", "event", "canary"}``; on failure the reason (redacted: the URL may hold a secret)."""
    body = {"text": text, "event": event, "canary": fields}
    try:
        r = httpx.post(url, json=body, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return redact(f"webhook not delivered ({event}): {type(exc).__name__}")
    if r.status_code >= 300:
        return redact(f"webhook not delivered ({event}): HTTP {r.status_code}")
    return None
