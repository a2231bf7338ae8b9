"""What a run may not write down: header values and a webhook URL taken from ``${ENV}`` references, and
literal values of headers that carry credentials. They are resolved when the run starts (the plan, the
job's payload and the history keep the references) and masked in everything the run writes or prints,
by the telemetry's ``Redactor`` (its known secrets: the same mask as a stored run's).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from opslab.canary.plan import Plan
from opslab.canary.strict import ENV_REF
from opslab.errors import InvalidInput
from opslab.telemetry import Redactor

# A literal (not ${ENV}) value of such a header is a credential too.
SENSITIVE = re.compile(r"authorization|cookie|token|secret|password|api[-_]?key|session", re.IGNORECASE)
# Shorter values would mask ordinary words and numbers in a report.
MIN_SECRET = 4


@dataclass(frozen=True)
class RunSecrets:
    headers: dict[str, str] = field(default_factory=dict)
    webhook_url: str | None = None
    prometheus_url: str | None = None
    values: tuple[str, ...] = ()
    # Only these values are masked: a canary's report is not free text to pattern-match.
    redactor: Redactor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "redactor", Redactor(enabled=False, known_secrets=self.values))

    def redact(self, text: str) -> str:
        return self.redactor.text(text)


def readable(patterns: Sequence[str]) -> Callable[[str], bool]:
    """Which variables a plan from elsewhere (sent to the service) may read: names matching a pattern,
    never the service's own ``OPSLAB_*`` settings (a plan could otherwise send them to its webhook)."""
    return lambda name: not name.startswith("OPSLAB_") and any(fnmatchcase(name, p) for p in patterns)


def resolve_secrets(
    plan: Plan, env: Mapping[str, str], *, may_read: Callable[[str], bool] | None = None
) -> RunSecrets:
    """The plan's ``${NAME}`` references filled from ``env``; every unset (or, with ``may_read``, not
    readable) one is refused, naming its field, before anything is sent."""
    errors: list[dict[str, str]] = []
    secrets: list[str] = []

    def fill(value: str, where: str) -> str:
        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if may_read is not None and not may_read(name):
                errors.append({"field": where, "message": f"${{{name}}} may not be read by a plan run here"})
                return ""
            if name not in env:
                errors.append({"field": where, "message": f"environment variable {name} is not set"})
                return ""
            secrets.append(env[name])
            return env[name]

        return ENV_REF.sub(one, value)

    headers = {}
    for name, value in plan.target.headers.items():
        headers[name] = fill(value, f"target.headers.{name}")
        if SENSITIVE.search(name):
            secrets.append(headers[name])
            # "Bearer <token>": the token alone may show up elsewhere (an echoing error body).
            secrets.extend(part for part in headers[name].split() if part.lower() not in ("bearer", "basic"))
    webhook = fill(plan.notify.webhook_url, "notify.webhook_url") if plan.notify else None
    if webhook:
        secrets.append(webhook)  # a Slack webhook URL is its own credential
    prom = plan.metrics.prometheus
    prom_url = fill(prom.url, "metrics.prometheus.url") if prom else None
    if errors:
        raise InvalidInput.for_fields(errors)
    values = sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True)
    return RunSecrets(headers=headers, webhook_url=webhook, prometheus_url=prom_url, values=tuple(values))
