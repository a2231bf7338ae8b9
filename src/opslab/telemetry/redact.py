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

_SECRET_KEY = re.compile(
    r"(?i)(passw(or)?d|pwd|secret|api[_-]?key|apikey|access[_-]?key|authorization|private[_-]?key|"
    r"credential|^token$|[_-]token$|^cookie$|session[_-]?id)"
)


@dataclass(frozen=True)
class Redactor:
    enabled: bool = True
    extra_patterns: tuple[str, ...] = ()
    _rules: tuple[tuple[re.Pattern[str], str], ...] = field(init=False, repr=False)
    _any: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rules = [(re.compile(p), r) for p, r in _DEFAULT_PATTERNS]
        rules += [(re.compile(p), MASK) for p in self.extra_patterns]
        object.__setattr__(self, "_rules", tuple(rules))
        # One combined search first: most strings hold no secret, and one scan is cheaper than eight.
        object.__setattr__(self, "_any", re.compile("|".join(f"(?:{r.pattern})" for r, _ in rules)))

    def text(self, value: str) -> str:
        if not self.enabled or not self._any.search(value):
            return value
        for pattern, replacement in self._rules:
            value = pattern.sub(replacement, value)
        return value

    def value(self, value: Any) -> Any:
        if not self.enabled:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                k: (
                    MASK
                    if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "")
                    else self.value(v)
                )
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value
