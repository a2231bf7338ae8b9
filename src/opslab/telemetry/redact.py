"""Secret redaction before storage: API keys, cloud keys, bearer tokens, JWTs and passwords in arguments.

Applied to every free-text field and, recursively, to tool arguments and attributes. Dictionary keys
that name a secret (``password``, ``api_key``, ``authorization`` …) have their whole value replaced.
Extra patterns come from ``Settings.redact_patterns``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MASK = "[REDACTED]"

_DEFAULT_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"\bsk-(?:[a-z]+-)?[A-Za-z0-9_\-]{16,}", MASK),  # OpenAI / Anthropic style keys
    (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", MASK),  # AWS access key ids
    (r"\bgh[pousr]_[A-Za-z0-9]{30,}\b", MASK),  # GitHub tokens
    (r"\bxox[abprs]-[A-Za-z0-9-]{10,}", MASK),  # Slack tokens
    (r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", MASK),  # JWTs
    (r"\b((?i:bearer|basic))\s+[A-Za-z0-9\-._~+/]{8,}=*", r"\1 " + MASK),
    (
        r"\b((?i:password|passwd|pwd|secret|api[_-]?key|access[_-]?key|auth[_-]?token|token))"
        r"(\"?\s*[=:]\s*\"?)[^\s,;&\"'}]+",
        r"\1\2" + MASK,
    ),
    (r"(://[^:/\s]+:)[^@/\s]+@", r"\1" + MASK + "@"),  # credentials inside URLs
)

# Every default pattern needs one of these (lower-cased) substrings; checking them first is ~7x cheaper
# than running the patterns on the many strings that hold no secret.
_MARKERS = re.compile(r"sk-|akia|asia|gh|xox|eyj|bearer|basic|pass|pwd|secret|key|token|://")

# The same markers as plain substrings, for the first look over a whole run (``might_hold_secret``):
# a dozen substring searches cost a fraction of the alternation above over the same text.
_MARKER_TEXTS = (
    "sk-",
    "akia",
    "asia",
    "gh",
    "xox",
    "eyj",
    "bearer",
    "basic",
    "pass",
    "pwd",
    "secret",
    "key",
    "token",
    "://",
)
# And what a key naming a secret contains, anywhere in a JSON document.
_SECRET_KEY_TEXTS = (
    "passw",
    "pwd",
    "secret",
    "key",
    "authorization",
    "credential",
    "token",
    "cookie",
    "session",
)

# Matched against the lower-cased key (an inline (?i) makes this alternation several times slower).
_SECRET_KEY = re.compile(
    r"passw(or)?d|pwd|secret|api[_-]?key|apikey|access[_-]?key|authorization|private[_-]?key|"
    r"credential|^token$|[_-]token$|^cookie$|session[_-]?id"
)


@dataclass(frozen=True)
class Redactor:
    enabled: bool = True
    extra_patterns: tuple[str, ...] = ()
    # The service's own secrets (its tokens, its ingest secret): masked wherever they appear, even with
    # redaction turned off — a run that quotes them must not make the database hold them.
    known_secrets: tuple[str, ...] = ()
    _rules: tuple[tuple[re.Pattern[str], str], ...] = field(init=False, repr=False)
    _extra: tuple[tuple[re.Pattern[str], str], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rules = [(re.compile(p), r) for p, r in _DEFAULT_PATTERNS]
        extra = [(re.compile(p), MASK) for p in self.extra_patterns]
        object.__setattr__(self, "_rules", tuple(rules + extra))
        object.__setattr__(self, "_extra", tuple(extra))

    def might_hold_secret(self, text: str, *, keys: bool = False) -> bool:
        """False when ``text`` (many values joined, or a JSON document when ``keys``) surely holds nothing
        to mask: one look over a whole run instead of one per field. Patterns of your own are not
        prefiltered (an anchored one could match a field and not the joined text)."""
        if any(secret in text for secret in self.known_secrets):
            return True
        if not self.enabled:
            return False
        if self._extra:
            return True
        lower = text.lower()
        return any(m in lower for m in _MARKER_TEXTS) or (keys and any(m in lower for m in _SECRET_KEY_TEXTS))

    def text(self, value: str) -> str:
        for secret in self.known_secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        if not self.enabled:
            return value
        rules = self._rules if _MARKERS.search(value.lower()) else self._extra
        for pattern, replacement in rules:
            value = pattern.sub(replacement, value)
        return value

    def value(self, value: Any) -> Any:
        """Redact a JSON-like value; returns the very same object when nothing needed masking."""
        if not self.enabled and not self.known_secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            changed = False
            for k, v in value.items():
                new = (
                    MASK
                    if self.enabled
                    and isinstance(k, str)
                    and v not in (None, "")
                    and _SECRET_KEY.search(k.lower())
                    else self.value(v)
                )
                changed = changed or new is not v
                out[k] = new
            return out if changed else value
        if isinstance(value, list):
            items = [self.value(v) for v in value]
            return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
        return value
