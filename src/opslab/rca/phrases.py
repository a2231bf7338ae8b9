"""What a step says, read the same way whichever agent system wrote it.

Every pattern here is plain language or a generic convention (a traceback, an HTTP status, a control
token such as ``TERMINATE``, a structured status field), never a phrase or key one particular agent
system happens to use: the localiser must read transcripts of systems it was not fitted on. A test
scans this package for the dev systems' agent names and house phrases.
"""

from __future__ import annotations

import re

_I = re.I | re.M
PATTERNS: dict[str, re.Pattern[str]] = {
    # A failure reported in the step's own output: a traceback, an exception, an error status.
    "error": re.compile(
        r"Traceback \(most recent call last\)|\b[A-Z]\w*(Error|Exception)\b\s*[:(]|\berror code:? ?\d{3}\b|"
        r"\bexit (code|status):? ?[1-9]|^error\b|\bstatus(?: code)?:? ?[45]\d\d\b|\bfailed to \w+|"
        r"\bcommand not found\b|\bunknown (tool|function|action)\b",
        _I,
    ),
    # The world said no: the thing asked for is not there.
    "not_found": re.compile(
        r"\b404\b|\bnot found\b|no such file|does not exist|\bcould ?n[o']t (find|locate|access|open|"
        r"download|retrieve|load)|unable to (find|locate|access|open|download|retrieve|load)|"
        r"cannot (find|locate|access|open|download)|no (results?|matches|information|data|records)\b|"
        r"page (is )?not available|\bempty (result|response|page)\b|^\s*(\[\s*\]|\{\s*\}|none|null)\s*$",
        _I,
    ),
    # Something outside the agent refused it: content filters, bot walls, permissions, rate limits.
    "blocked": re.compile(
        r"content[_ ]?filter|policy ?violation|jailbreak|captcha|are you (a )?robot|"
        r"verify (that )?you are (a )?human|\bjust a moment\.\.\.|access denied|\b403\b|forbidden|"
        r"rate.?limit|too many requests|\b429\b|unusual traffic",
        _I,
    ),
    # Claims that the work is done.
    "success_claim": re.compile(
        r"request (is )?satisfied|\bsuccessfully\b|"
        r"has been (completed|updated|cancelled|canceled|processed|modified|returned)|\bFINAL ANSWER\b|"
        r"task (is )?(complete|completed|done)\b|\ball (set|done)\b",
        _I,
    ),
    # An agent admitting no progress, a loop, a dead end.
    "stall": re.compile(
        r"\b(we are|we're|i am|i'm) (stuck|going in circles)\b|\bno (further )?progress\b|"
        r"\bnot making (any )?progress\b|\b(we are|we're) in a loop\b",
        _I,
    ),
    # The plan was thrown away.
    "replan": re.compile(
        r"\b(new|updated|revised) plan\b|\bre-?plan|different approach|change (of )?strategy", _I
    ),
    # Made-up specifics: placeholder paths and values, stated assumptions.
    "invented": re.compile(
        r"path_to_|/path/to/|<(your|insert)[^>]*>|\bplaceholder\b|\bhypothetical\b|\bI('ll| will)? assume\b|"
        r"\bassuming\b|\blet'?s say\b|\bexample\.(com|org)\b|\bdummy\b",
        _I,
    ),
    # The conversation was ended here: a control token alone on its line, a hand-off to a human, a farewell.
    "end": re.compile(
        r"^\W*(terminate|stop|exit|end)\W*$|\btransfer\w*\W+(\w+\W+)?to\W+(a\W+)?human|\bFINAL ANSWER\b|"
        r"\bgoodbye\b|\bhave a (great|nice|good) day\b",
        _I,
    ),
}
# A lead saying its worker did not do what it was asked.
BLAME = re.compile(
    r"\b(did not|didn't|could not|couldn't|was unable to|were unable to|failed to|has not|hasn't|"
    r"have not|haven't|not (yet )?(been )?able to|instead of)\b[^.\n]{0,80}\b(find|provide|access|open|"
    r"download|locate|retrieve|follow|complete|extract|identify|load|read|search|click|navigate)",
    re.I,
)
# Something was found or settled.
FOUND = re.compile(r"\b(found|identified|located|confirmed|obtained|gathered|determined|retrieved)\b", re.I)
# The whole request declared answered, in words.
SATISFIED = re.compile(
    r"^\s*request (is )?satisfied\b|\b(the )?(task|request) (is|has been) (complete|completed|fulfilled|"
    r"satisfied|resolved)\b",
    re.I | re.M,
)
# The answer a run gave.
ANSWER = re.compile(r"\bFINAL ANSWER\b|\bfinal[_ ]answer\b|\bthe (final )?answer is\b", re.I)
CONFIRM = re.compile(r"\b(yes|yeah|yep|confirm(ed)?|go ahead|proceed|please do|sounds good|correct)\b", re.I)
# Tool names that change the world (create, update, delete, pay, send …), not those that read it.
WRITE = re.compile(
    r"^(modify|update|cancel|delete|remove|return|exchange|create|book|transfer|send|submit|pay|refund|"
    r"write|set|post|put|place|purchase|order|add|change|edit)",
    re.I,
)
ENTITY = re.compile(r"#\w+|\b\d[\d,.]*\b|\"[^\"]{2,40}\"|'[^']{2,40}'|\*\*[^*]{2,40}\*\*")
WORD = re.compile(r"[a-z]{3,}")
ID = re.compile(r"#\w+|\b\d{5,}\b")
CHOICE = re.compile(
    r"\b(go with|i'?ll take|i choose|i'?d prefer|i prefer|i'?ll pick|let'?s (do|go with)|instead|"
    r"i'?d like (to go with|the)|i want the)\b",
    re.I,
)

# Structured status fields (``"progress": false``, ``"done": {"reason": …, "answer": true}``), by the
# words in their names: a planner's own account of where the work stands.
_FIELD = re.compile(r"\"(\w+)\"\s*:\s*(\{[^{}]*\}|true|false)", re.I)
_VALUE = re.compile(r"\"(?:answer|value|status)\"\s*:\s*(true|false)", re.I)
_STATUS_KINDS = (
    ("satisfied", re.compile(r"satisf|complete|solved|finished|done", re.I)),
    ("progress", re.compile(r"progress", re.I)),
    ("loop", re.compile(r"loop|stuck|repeat|circl", re.I)),
)


def status(text: str) -> dict[str, tuple[bool, str]]:
    """The status fields a step reports: kind (satisfied, progress, loop) -> (value, the field's text)."""
    out: dict[str, tuple[bool, str]] = {}
    for m in _FIELD.finditer(text):
        body = m.group(2)
        v = _VALUE.search(body) if body.startswith("{") else None
        value = (v.group(1) if v else body).lower()
        if value not in ("true", "false"):
            continue
        for kind, words in _STATUS_KINDS:
            if words.search(m.group(1)) and kind not in out:
                out[kind] = (value == "true", body)
    return out


def stalled(text: str) -> bool:
    """The step reports no progress, or a loop, in words or in its status fields."""
    s = status(text)
    return (
        bool(PATTERNS["stall"].search(text))
        or ("progress" in s and not s["progress"][0])
        or ("loop" in s and s["loop"][0])
    )


def satisfied(text: str) -> bool:
    """The step declares the whole request answered."""
    s = status(text)
    return bool(SATISFIED.search(text)) or ("satisfied" in s and s["satisfied"][0])


def progress_found(text: str) -> bool:
    """The step reports progress because something was found or settled."""
    s = status(text).get("progress")
    return s is not None and s[0] and bool(FOUND.search(s[1]))
