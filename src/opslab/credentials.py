"""What a credential that guards access must be: checked when settings load, so a weak one refuses to
start instead of protecting less than it seems to.

A credential (the API token, the read token, the ingest secret, the action server's token, the dashboard's
session key) is refused when it is

- empty, or padded with spaces (a client's token never carries them, so it could never match);
- a placeholder copied from an example (``changeme``, ``your-api-token``, ``${OPSLAB_API_TOKEN}``,
  ``<token>``, ``xxxx…``);
- shorter than ``MIN_LENGTH`` characters (16) on a deployed service: in production, or reachable beyond
  loopback; a service only this machine can reach takes ``MIN_LOCAL_LENGTH`` (8) with a warning line;
- the same as another credential (a read token equal to the API token could write).

An LLM key is not a credential of this service: a placeholder there means "no LLM", not a risk.
"""

from __future__ import annotations

import re

MIN_LENGTH = 16  # a deployed service: production, or bound beyond loopback
MIN_LOCAL_LENGTH = 8  # a service only this machine reaches (a laptop, a test)
GENERATE_HINT = "generate one with `openssl rand -hex 32`"

# Whole values seen in examples and templates, compared lowercased.
PLACEHOLDERS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "password",
        "token",
        "xxx",
        "todo",
        "tbd",
        "fixme",
        "none",
        "null",
        "default",
        "your-key-here",
    }
)
# Words that mark an example value wherever they appear (compared on the lowercased letters and digits);
# too long to turn up by chance in a random token.
_PLACEHOLDER_WORDS = (
    "changeme",
    "replaceme",
    "placeholder",
    "yourapi",
    "yourtoken",
    "yoursecret",
    "yourkey",
    "yourpassword",
    "yourread",
    "youringest",
    "youraction",
    "tokenhere",
    "secrethere",
    "keyhere",
    "example",
    "insertyour",
    "putyour",
    "setme",
    "fillme",
    "redacted",
)
# An unexpanded reference or a template slot: ${NAME}, $NAME, {{ name }}, %NAME%, <token>, [token].
_TEMPLATE = re.compile(
    r"\$\{|\{\{|^\$[A-Za-z_]\w*$|^%[A-Za-z_]\w*%$|^<[^<>]*>$|^\[[^\[\]]*\]$",
)
# A value of so few distinct characters (xxxxxxxxxxxxxxxx, 0000-0000-0000-0000) is a mask, not a secret.
_MIN_DISTINCT = 5


def is_placeholder(value: str) -> bool:
    """Whether ``value`` looks copied from an example or masked, rather than generated."""
    return _copied(value) or _masked(value)


def credential_problem(value: str, *, min_length: int = MIN_LENGTH) -> str | None:
    """Why ``value`` may not guard access (one line), or None when it may."""
    if not value.strip():
        return "empty: set a real value or leave the variable unset"
    if value != value.strip():
        return "has spaces around it, so no client's token could ever match: remove them"
    if _copied(value):
        return f"a placeholder, not a secret: {GENERATE_HINT}, or leave the variable unset"
    if len(value) < min_length:
        return too_short(value, min_length)
    if _masked(value):
        return f"a placeholder (hardly any distinct characters), not a secret: {GENERATE_HINT}"
    return None


def _copied(value: str) -> bool:
    text = value.strip()
    lowered = text.lower()
    if lowered in PLACEHOLDERS or _TEMPLATE.search(text):
        return True
    letters = re.sub(r"[^a-z0-9]", "", lowered)
    return any(word in letters for word in _PLACEHOLDER_WORDS)


def _masked(value: str) -> bool:
    return len(set(value.strip().lower())) < _MIN_DISTINCT


def shared_with(value: str, others: dict[str, str]) -> str | None:
    """The name of another credential (``name -> value``) that has the same value, if any."""
    for name, other in others.items():
        if other == value:
            return name
    return None


def too_short(value: str, min_length: int = MIN_LENGTH) -> str | None:
    """Why ``value`` is too short for a token (one line), or None."""
    n = len(value)
    if n >= min_length:
        return None
    plural = "s" if n > 1 else ""
    return f"only {n} character{plural}; a token needs at least {min_length}: {GENERATE_HINT}"


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps a service reachable from this machine only."""
    import ipaddress

    if host.strip("[]").lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
