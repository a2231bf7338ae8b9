"""What a credential that guards access must be: checked when settings load, so a weak one refuses to
start instead of protecting less than it seems to.

A credential (the API token, the read token, the ingest secret, the action server's token, the dashboard's
session key) is refused when it is

- empty, or padded with spaces (a client's token never carries them, so it could never match);
- a placeholder copied from an example (``changeme``, ``your-api-token``, ``${OPSLAB_API_TOKEN}``,
  ``<token>``, ``xxxx…``);
- shorter than ``MIN_LENGTH`` characters (16) on a deployed service: in production, or reachable beyond
  loopback; a service only this machine can reach takes ``MIN_LOCAL_LENGTH`` (8) with a warning line;
- guessable on a deployed service, under the same rule: fewer than ``10**MIN_GUESSES_LOG10`` guesses as
  zxcvbn estimates them (common passwords, words, names, keyboard walks, repeats, sequences, dates:
  ``password12345678``, ``qwertyuiopasdfgh``, ``admin-admin-admin``);
- the same as another credential (a read token equal to the API token could write).

An LLM key is not a credential of this service: a placeholder there means "no LLM", not a risk.
"""

from __future__ import annotations

import re

MIN_LENGTH = 16  # a deployed service: production, or bound beyond loopback
MIN_LOCAL_LENGTH = 8  # a service only this machine reaches (a laptop, a test)
GENERATE_HINT = "generate one with `openssl rand -hex 32`"
# zxcvbn's top score ("very unguessable"). Random tokens clear it by far: `secrets.token_hex(8)`, 16 hex
# characters, estimated at no less than 10^11.6 in 40,000 draws; token_urlsafe(16) at 10^20. What people
# type stays under it: password12345678 and qwertyuiopasdfgh 10^4.2, admin-admin-admin 10^7.9.
MIN_GUESSES_LOG10 = 10
_ZXCVBN_MAX_LENGTH = 72  # zxcvbn refuses longer input (and its time grows with the square of the length)
# What zxcvbn found, told without quoting the value (a refused token may be a password used elsewhere).
_KINDS = {
    "passwords": "a common password",
    "english_wikipedia": "a word",
    "us_tv_and_film": "a word",
    "surnames": "a name",
    "male_names": "a name",
    "female_names": "a name",
    "user_inputs": "the product's name",
    "spatial": "a keyboard walk",
    "repeat": "a repeat",
    "sequence": "a sequence",
    "regex": "a year",
    "date": "a date",
}

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


def guessable(value: str) -> str | None:
    """Why ``value`` is too easy to guess for a token (one line), or None."""
    # zxcvbn loads its word lists on import (about 40 ms): only a deployed service's check pays for it.
    from zxcvbn import zxcvbn

    guesses_log10 = 0.0
    kinds: dict[str, None] = {}
    # A value longer than zxcvbn takes is scored by parts: guesses multiply, so their logarithms add.
    for start in range(0, len(value), _ZXCVBN_MAX_LENGTH):
        found = zxcvbn(value[start : start + _ZXCVBN_MAX_LENGTH], user_inputs=["opslab"])
        guesses_log10 += float(found["guesses_log10"])
        for match in found["sequence"]:
            kind = _KINDS.get(match.get("dictionary_name") or match["pattern"])
            if kind is not None:
                kinds[kind] = None
        if guesses_log10 >= MIN_GUESSES_LOG10:
            return None
    made_of = f" ({', '.join(kinds)})" if kinds else ""
    needs = f"a token needs at least 10^{MIN_GUESSES_LOG10}"
    return f"guessable{made_of}: about 10^{guesses_log10:.0f} guesses; {needs}: {GENERATE_HINT}"


def deployed_problem(value: str) -> str | None:
    """Why ``value`` may not guard a deployed service (in production, or reachable beyond loopback) though
    a service only this machine reaches may run with it, warned: too short, or guessable."""
    return too_short(value) or guessable(value)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps a service reachable from this machine only."""
    import ipaddress

    if host.strip("[]").lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
