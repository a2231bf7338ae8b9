"""``docs/configuration.md`` from ``Settings``: variable, the seed's name it also reads, default, meaning."""

from __future__ import annotations

import json
import types
import typing
from enum import Enum
from pathlib import Path

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from opslab.capabilities import CAPABILITIES, PLATFORM
from opslab.config import Settings, seed_aliases, settings_sections

INTRO = """\
# Configuration

<!-- Generated from opslab.config.Settings by `make docs` (python -m opslab.docgen): edit the fields'
descriptions or src/opslab/docgen/configuration.py, not this page. A test fails when they differ. -->

All configuration comes from environment variables with the prefix `OPSLAB_`, read in one place
(`opslab.config.Settings`), and from a `.env` file: `.env` in the working directory when there is one, or
the file `OPSLAB_ENV_FILE` names. The environment wins over the file, and `opslab serve` says at start-up
which file it read (`cp .env.example .env` from a seed works: its names are read too, see below). A
`.env` of another project in that directory is read as well — its `DATABASE_URL` or `PORT` would apply:
run opslab elsewhere, set the `OPSLAB_*` names, or `OPSLAB_ENV_FILE=/dev/null` to read no file. A
refused value stops every command (and `opslab serve`) with one line naming
the variable and exit code 2. Tokens and secrets that guard access (`OPSLAB_API_TOKEN`,
`OPSLAB_READ_TOKEN`, `OPSLAB_INGEST_SECRET`, `OPSLAB_ACTION_TOKEN`, `OPSLAB_UI_SESSION_SECRET`) need 16+
characters, no surrounding spaces, no placeholder (`changeme`, `your-api-token`, `${OPSLAB_API_TOKEN}` …)
and a value of their own ([security.md](security.md#token-rules)): an empty `OPSLAB_INGEST_SECRET=` is an
error, not "no secret" — leave the variable unset for that. Lists are a JSON list
(`OPSLAB_REDACT_PATTERNS='["acct-[0-9]{4,8}"]'`) or comma-separated (`OPSLAB_LAB_ALLOWED_ROOTS=/srv/a,/srv/b`;
a comma inside `()`, `[]` or `{}` stays in its item); booleans are `true`/`false`.
"""

SEEDS = """\
## The seeds' variable names

The projects opslab grew from (the seeds) name some of these settings differently. Their names are read
too, so a `.env` written for a seed keeps working: each one in the table sets the setting beside it. When
both are set, the `OPSLAB_*` name wins. A seed's variable left empty means unset, as in the seeds'
`.env` examples (`APP_INGEST_SECRET=`, `OPENAI_API_KEY=`); an empty `OPSLAB_*` secret stays an error.
Generic names such as `DATABASE_URL` or `REDIS_URL` exported in your shell for another project are read
too: set the `OPSLAB_*` name to override them.

| seed variable | sets |
|---|---|
"""

UNMAPPED = """
Seed variables with no setting of their own:

| seed variable | in opslab |
|---|---|
| `DEBUG` | nothing: `opslab serve --log-level debug` (or `LOG_LEVEL=debug`) for more log |
| `VECTOR_STORE_PATH` | nothing to store: the knowledge index is built in memory from the runbooks \
(`OPSLAB_KNOWLEDGE_DIR`) |

`OPENAI_API_KEY` alone turns the LLM on with the OpenAI API (`https://api.openai.com/v1`, model
`LLM_MODEL`, default `gpt-4o-mini`); `OPSLAB_LLM_BASE_URL` names any other OpenAI-compatible endpoint.
A placeholder key (`OPENAI_API_KEY=your-key-here`, as the seed's `.env` ships it) counts as no key: the
LLM stays off and `opslab serve` says so in one warning line. `opslab serve` logs whether the LLM is on,
with its model and endpoint (never the key). Telemetry holds prompts and outputs: with the LLM on, RCA
and the responder send parts of them to that endpoint.
Tests read their own variables (`OPSLAB_TEST_POSTGRES_URL`, `OPSLAB_TEST_REDIS_URL`,
`OPSLAB_TEST_REQUIRE_SERVICES`): see the README's test section.
"""


def variable_names(name: str, info: FieldInfo) -> list[str]:
    """The environment names of a field: ``OPSLAB_<NAME>`` first, then the seed's, if any."""
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        names = [c for c in alias.choices if isinstance(c, str) and c.isupper()]
        if names:
            return names
    return [f"OPSLAB_{name.upper()}"]


def render_configuration() -> str:
    """One table per settings section: the service's own, then each capability's (``opslab.capabilities``)."""
    summaries = {cap.name: cap.summary for cap in (PLATFORM, *CAPABILITIES)}
    rows: list[str] = []
    for section, fields in settings_sections().items():
        rows += [f"### {section}", "", f"{summaries[section][:1].upper()}{summaries[section][1:]}.", ""]
        rows += ["| variable | also read as | default | meaning |", "|---|---|---|---|"]
        for name in fields:
            info = Settings.model_fields[name]
            first, *aliases = variable_names(name, info)
            also = ", ".join(f"`{a}`" for a in aliases)
            rows.append(f"| `{first}` | {also} | {_default(info)} | {_meaning(info)} |")
        rows.append("")
    seeds = [
        f"| `{seed}` | `{variable_names(field, Settings.model_fields[field])[0]}` |"
        for seed, field in seed_aliases().items()
    ]
    return "\n".join([INTRO, "## Settings", "", *rows, SEEDS + "\n".join(seeds), UNMAPPED])


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if value is None:
        return "unset"
    return f"`{_literal(value)}`"


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, list | dict):
        return json.dumps(
            [str(v) if isinstance(v, Path) else v for v in value] if isinstance(value, list) else value
        )
    return str(value)


def _meaning(info: FieldInfo) -> str:
    text = (info.description or "").replace("|", "\\|").replace("\n", " ")
    choices = _choices(info.annotation)
    if choices:
        text += " One of " + ", ".join(f"`{c}`" for c in choices) + "."
    return text


def _choices(annotation: object) -> list[str]:
    if typing.get_origin(annotation) is typing.Literal:
        return [str(a) for a in typing.get_args(annotation)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return [c for arg in typing.get_args(annotation) for c in _choices(arg)]
    return []
