"""``opslab lab validate-schema``: a file checked against one of the lab's named formats.

Every problem is reported with the JSON path where it is (``$.design.replications``,
``$.metrics.latency_ms``; for the JSON Lines ``events``, with its line). The typed records are checked as
their models read them, strictly (``"1"`` is not an integer); ``trial_output`` is the harness protocol's
JSON Schema (what a harness writes); the knob files are checked as ``knobs-validate`` checks them, the
first problem at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from opslab.errors import InvalidInput
from opslab.lab.config import ExperimentConfig
from opslab.lab.control import ControlFile
from opslab.lab.harness import OUTPUT_SCHEMA
from opslab.lab.hooks import DEFAULT_MANIFEST, HarnessManifest, Problem, invalid, stream_problems
from opslab.lab.knobs import load_overrides, validate_manifest
from opslab.lab.records import Attestation, Manifest, TrialInput, TrialRecord

Check = Callable[[Path], list[Problem]]


class SchemaReport(BaseModel):
    schema_name: str
    file: Path
    valid: bool = True


def validate_schema(name: str, path: Path) -> SchemaReport:
    """``InvalidInput`` naming every problem (or the unknown schema, listing the known), else the report."""
    if name not in SCHEMAS:
        known = sorted(SCHEMAS)
        raise InvalidInput.for_field(
            "--schema", f"unknown schema {name!r}; known: {', '.join(known)}", known=known
        )
    if not path.is_file():
        raise InvalidInput.for_field("FILE", f"{path}: no such file")
    problems = SCHEMAS[name][1](path)
    if problems:
        raise invalid(path, problems, schema=name)
    return SchemaReport(schema_name=name, file=path)


def _model(model: type[BaseModel]) -> Check:
    def check(path: Path) -> list[Problem]:
        raw = path.read_bytes()
        try:
            model.model_validate_json(raw, strict=True)
        except ValidationError as exc:
            data = _json_or_none(raw)
            return _from_pydantic(exc, data)
        return []

    return check


def _experiment(path: Path) -> list[Problem]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        return [Problem(field="$", message=f"not YAML or JSON: {exc}")]
    try:
        ExperimentConfig.model_validate(data, strict=True)
    except ValidationError as exc:
        return _from_pydantic(exc, data)
    return []


def _protocol(path: Path) -> list[Problem]:
    data = _json_or_none(path.read_bytes())
    if data is None:
        return [Problem(field="$", message="not JSON")]
    return _json_schema(OUTPUT_SCHEMA, data, "$")


def _events(path: Path) -> list[Problem]:
    return stream_problems(path, DEFAULT_MANIFEST)[0]


def _knobs(load: Callable[[Path], object], top: str) -> Check:
    def check(path: Path) -> list[Problem]:
        try:
            load(path)
        except InvalidInput as exc:
            return [
                Problem(
                    field="$" if e["field"] in (top, "--overrides") else f"$.{e['field']}",
                    message=e["message"],
                )
                for e in exc.details.get("errors", [])
            ]
        return []

    return check


def _knobs_manifest(path: Path) -> None:
    data = _json_or_none(path.read_bytes())
    if data is None:
        raise InvalidInput.for_field("manifest", "not JSON")
    validate_manifest(data)


SCHEMAS: dict[str, tuple[str, Check]] = {
    "trial_input": ("trial_input.json: what the runner gives a harness", _model(TrialInput)),
    "trial_output": ("out/trial_output.json: what a harness writes (the protocol)", _protocol),
    "trial_record": ("trials/<id>/trial_output.json: the runner's record of a trial", _model(TrialRecord)),
    "experiment": (".lab/experiment.yaml (YAML or JSON)", _experiment),
    "knobs_manifest": (".lab/knobs/manifest.json", _knobs(_knobs_manifest, "manifest")),
    "knobs_overrides": (".lab/knobs/overrides.json and the manifest it names", _knobs(load_overrides, "")),
    "harness_manifest": (".lab/harness_manifest.json", _model(HarnessManifest)),
    "events": ("harness_events.jsonl, every line (validate-hooks checks it against a manifest)", _events),
    "manifest": ("a run's manifest.json", _model(Manifest)),
    "attestation": ("a run's attestation.json (an in-toto Statement)", _model(Attestation)),
    "control": ("a run's control.json", _model(ControlFile)),
}


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _from_pydantic(exc: ValidationError, data: Any) -> list[Problem]:
    """Pydantic's errors as JSON paths into ``data``. A union's members each report under a tag of their
    own (``…, 'int'``); those tags are cut where the path leaves the data, and their messages merged."""
    merged: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False):
        loc = err["loc"] if err["type"] == "missing" else _walk(data, err["loc"])
        msgs = merged.setdefault(_path(loc), [])
        if err["msg"] not in msgs:
            msgs.append(err["msg"])
    return [
        Problem(field=field, message=msgs[0] if len(msgs) == 1 else _either(msgs))
        for field, msgs in merged.items()
    ]


def _walk(data: Any, loc: Sequence[int | str]) -> Sequence[int | str]:
    node = data
    for i, part in enumerate(loc):
        inside = isinstance(node, dict) and part in node
        inside = inside or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node))
        if inside:
            node = node[part]
        elif isinstance(node, dict) and i == len(loc) - 1:
            return loc  # a key that should not be there (extra fields forbidden)
        else:
            return loc[:i]
    return loc


def _path(loc: Sequence[int | str]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def _either(messages: list[str]) -> str:
    return "Input should be " + " or ".join(m.removeprefix("Input should be ") for m in messages)


_TYPES: dict[str, Callable[[object], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _json_schema(schema: dict[str, Any], value: object, path: str) -> list[Problem]:
    """The subset of JSON Schema the harness protocol uses (type, enum, required, properties,
    additionalProperties, items), every problem rather than the first."""
    kinds = schema.get("type")
    if kinds is not None:
        allowed = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_TYPES[k](value) for k in allowed):
            return [
                Problem(field=path, message=f"must be {' or '.join(allowed)}, got {json.dumps(value)[:80]}")
            ]
    if "enum" in schema and value not in schema["enum"]:
        return [Problem(field=path, message=f"must be one of {schema['enum']}, got {json.dumps(value)[:80]}")]
    problems: list[Problem] = []
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                problems.append(Problem(field=f"{path}.{key}", message="required"))
        props: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                problems.extend(_json_schema(sub, item, f"{path}.{key}"))
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problems.extend(_json_schema(schema["items"], item, f"{path}[{i}]"))
    return problems
