"""Values of ``runtime.env_allow`` variables kept out of what a trial leaves behind: the harness gets them,
its logs, events, spans and output are scrubbed of them before the trial is recorded."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

MIN_SECRET_CHARS = 4  # shorter values would scrub ordinary text; they are passed, not scrubbed
SCRUBBED_FILES = ("stdout.log", "stderr.log", "harness_events.jsonl", "trial_output.json", "otel_spans.jsonl")


def secret_values(names: list[str], env: Mapping[str, str]) -> dict[str, str]:
    """The allowed variables present in ``env``: name -> value."""
    return {n: env[n] for n in names if n in env}


def scrub_text(text: str, secrets: Mapping[str, str]) -> str:
    for name, value in secrets.items():
        if len(value) >= MIN_SECRET_CHARS:
            text = text.replace(value, f"[REDACTED:{name}]")
    return text


def scrub_value(value: Any, secrets: Mapping[str, str]) -> Any:
    """A JSON value with every secret replaced wherever it appears in a string."""
    if not secrets:
        return value
    return json.loads(scrub_text(json.dumps(value), secrets))


def scrub_dir(directory: str, secrets: Mapping[str, str]) -> None:
    """Rewrite the trial's output files that mention a secret (only those)."""
    needles = [
        (v.encode(), f"[REDACTED:{n}]".encode()) for n, v in secrets.items() if len(v) >= MIN_SECRET_CHARS
    ]
    if not needles:
        return
    for name in SCRUBBED_FILES:
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        scrubbed = data
        for needle, replacement in needles:
            scrubbed = scrubbed.replace(needle, replacement)
        if scrubbed != data:
            with open(path, "wb") as f:
                f.write(scrubbed)
