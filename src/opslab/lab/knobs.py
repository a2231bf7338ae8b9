"""Parameter overrides (knobs): a manifest declares tunable JSON pointers with types and bounds; an
overrides file sets values by knob id. Every problem is refused naming the field, before anything runs."""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opslab.errors import InvalidInput

MANIFEST = Path(".lab/knobs/manifest.json")
OVERRIDES = Path(".lab/knobs/overrides.json")
_TYPES: dict[str, type | tuple[type, ...]] = {
    "integer": int,
    "number": (int, float),
    "string": str,
    "boolean": bool,
}
ROLES = ("core", "harness", "benchmark", "infra")
SCIENTIFIC_ROLES = ("treatment", "control", "confound", "invariant")

# What `knobs-init` declares: the fields people most often vary without editing the experiment.
DEFAULT_KNOBS: list[dict[str, Any]] = [
    {
        "id": "design.replications",
        "json_pointer": "/design/replications",
        "type": "integer",
        "minimum": 1,
        "maximum": 1000,
        "role": "core",
        "scientific_role": "control",
    },
    {
        "id": "design.random_seed",
        "json_pointer": "/design/random_seed",
        "type": "integer",
        "minimum": 0,
        "role": "core",
        "scientific_role": "control",
    },
    {
        "id": "dataset.limit",
        "json_pointer": "/dataset/limit",
        "type": "integer",
        "minimum": 1,
        "role": "benchmark",
        "scientific_role": "control",
    },
    {
        "id": "design.trial_timeout_s",
        "json_pointer": "/design/trial_timeout_s",
        "type": "number",
        "minimum": 1,
        "maximum": 86400,
        "role": "infra",
        "scientific_role": "invariant",
    },
]


def _read(path: Path, what: str) -> Any:
    if not path.is_file():
        raise InvalidInput.for_field(what, f"{path}: no such file")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise InvalidInput.for_field(what, f"{path}: not JSON: {exc}") from None


def _pointer_parts(pointer: str, field: str) -> list[str]:
    if not pointer.startswith("/") or pointer == "/":
        raise InvalidInput.for_field(field, f"{pointer!r} must be a JSON pointer like /design/replications")
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]


def _step(node: Any, part: str, pointer: str, field: str) -> tuple[Any, str | int]:
    """The container ``part`` indexes in ``node`` and the key or index (RFC 6901: arrays by index)."""
    if isinstance(node, dict):
        return node, part
    if isinstance(node, list):
        if not (part.isdigit() and (part == "0" or not part.startswith("0"))):
            raise InvalidInput.for_field(field, f"{pointer}: {part!r} is not an array index (0, 1, …)")
        if int(part) >= len(node):
            raise InvalidInput.for_field(
                field, f"{pointer}: index {part} is past the end ({len(node)} items)"
            )
        return node, int(part)
    raise InvalidInput.for_field(
        field, f"{pointer}: {part!r} indexes a value that is neither object nor array"
    )


def _set_pointer(doc: Any, pointer: str, value: Any, field: str) -> None:
    parts = _pointer_parts(pointer, field)
    node = doc
    for part in parts[:-1]:
        container, key = _step(node, part, pointer, field)
        if isinstance(container, dict) and key not in container:
            raise InvalidInput.for_field(field, f"{pointer}: {part!r} does not exist in the experiment")
        node = container[key]
    container, key = _step(node, parts[-1], pointer, field)
    container[key] = value


def validate_manifest(manifest: Any, *, lines: list[int] | None = None) -> dict[str, dict[str, Any]]:
    """The manifest's knobs by id; each must have an id, a JSON pointer, a known type, sane bounds. Every
    problem of every knob is refused at once, each naming its field (and, given ``lines`` — where each
    knob starts in the file — its line)."""
    knobs, problems = manifest_problems(manifest, lines=lines)
    if problems:
        raise InvalidInput.for_fields(problems)
    return knobs


def manifest_problems(
    manifest: Any, *, lines: list[int] | None = None
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The manifest's valid knobs by id, and every problem of the others (``{"field", "message"}``, with
    ``"line"`` when known)."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("knobs"), list):
        return {}, [{"field": "manifest", "message": 'expected {"knobs": [...]}'}]
    knobs: dict[str, dict[str, Any]] = {}
    problems: list[dict[str, Any]] = []
    ids: set[str] = set()
    for i, knob in enumerate(manifest["knobs"]):
        found = _knob_problems(knob, f"knobs[{i}]", ids)
        line = lines[i] if lines is not None and i < len(lines) else None
        for field, message in found:
            problems.append(
                {"field": field, "message": f"{message} (line {line})", "line": line}
                if line is not None
                else {"field": field, "message": message}
            )
        if not found:
            knobs[knob["id"]] = knob
    return knobs, problems


def _knob_problems(knob: Any, where: str, ids: set[str]) -> list[tuple[str, str]]:
    """Every problem of one knob, as (field, message); its id joins ``ids``."""
    if not isinstance(knob, dict):
        return [(where, "expected an object")]
    found: list[tuple[str, str]] = []
    knob_id = knob.get("id")
    if not isinstance(knob_id, str) or not knob_id:
        found.append((f"{where}.id", "a non-empty string is required"))
    elif knob_id in ids:
        found.append((f"{where}.id", f"{knob_id!r} is declared twice"))
    else:
        ids.add(knob_id)
    try:
        _pointer_parts(str(knob.get("json_pointer", "")), f"{where}.json_pointer")
    except InvalidInput as exc:
        found.append((f"{where}.json_pointer", exc.message.removeprefix(f"{where}.json_pointer: ")))
    if not isinstance(knob.get("type"), str) or knob["type"] not in _TYPES:
        found.append((f"{where}.type", f"one of {sorted(_TYPES)}, got {knob.get('type')!r}"))
    finite = True
    for bound in ("minimum", "maximum"):
        b = knob.get(bound)
        if bound in knob and (not isinstance(b, int | float) or isinstance(b, bool) or not math.isfinite(b)):
            found.append((f"{where}.{bound}", "must be a finite number"))
            finite = False
    if finite and "minimum" in knob and "maximum" in knob and knob["minimum"] > knob["maximum"]:
        found.append((f"{where}.minimum", "is above the maximum"))
    for key, allowed in (("role", ROLES), ("scientific_role", SCIENTIFIC_ROLES)):
        if key in knob and knob[key] not in allowed:
            found.append((f"{where}.{key}", f"one of {list(allowed)}, got {knob[key]!r}"))
    return found


def knob_lines(text: str) -> list[int] | None:
    """The line each element of the top-level ``"knobs"`` array starts on in a manifest's JSON text
    (``None`` when the text is not such an object)."""
    decoder = json.JSONDecoder()
    space = re.compile(r"\s*")

    def skip(pos: int) -> int:
        match = space.match(text, pos)
        return match.end() if match else pos

    try:
        pos = skip(0)
        if text[pos : pos + 1] != "{":
            return None
        pos += 1
        while True:
            pos = skip(pos)
            if text[pos : pos + 1] != '"':
                return None
            key, pos = decoder.raw_decode(text, pos)
            pos = skip(pos)
            if text[pos : pos + 1] != ":":
                return None
            pos = skip(pos + 1)
            if key == "knobs" and text[pos : pos + 1] == "[":
                return _element_lines(text, pos + 1, decoder, skip)
            _, pos = decoder.raw_decode(text, pos)
            pos = skip(pos)
            if text[pos : pos + 1] != ",":
                return None
            pos += 1
    except ValueError:
        return None


def _element_lines(text: str, pos: int, decoder: json.JSONDecoder, skip: Callable[[int], int]) -> list[int]:
    lines: list[int] = []
    pos = skip(pos)
    while text[pos : pos + 1] not in ("]", ""):
        lines.append(text.count("\n", 0, pos) + 1)
        _, pos = decoder.raw_decode(text, pos)
        pos = skip(pos)
        if text[pos : pos + 1] == ",":
            pos = skip(pos + 1)
    return lines


def _check_value(knob: dict[str, Any], value: Any, field: str) -> None:
    expected = _TYPES[knob["type"]]
    if not isinstance(value, expected) or (knob["type"] != "boolean" and isinstance(value, bool)):
        raise InvalidInput.for_field(field, f"expected {knob['type']}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput.for_field(field, f"must be a finite number, got {value!r}")
    if "minimum" in knob and value < knob["minimum"]:
        raise InvalidInput.for_field(field, f"{value} is below the minimum {knob['minimum']}")
    if "maximum" in knob and value > knob["maximum"]:
        raise InvalidInput.for_field(field, f"{value} is above the maximum {knob['maximum']}")


def load_overrides(
    overrides_path: Path, project_root: Path | None = None, *, manifest: Path | None = None
) -> tuple[Path, dict[str, dict[str, Any]], dict[str, Any]]:
    """The manifest's path and knobs and the override values, all validated.

    The manifest is ``manifest`` when given (``knobs-validate --manifest``, the SDKs' ``manifest``),
    else the overrides' ``manifest_path``. A relative ``manifest_path`` resolves against the project
    root (the parent of ``.lab/``), as every path of the seed does: the experiment's project when known,
    else the project the overrides file sits in (``.lab/knobs/overrides.json``), else the current
    directory."""
    overrides = _read(overrides_path, "--overrides")
    if not isinstance(overrides, dict) or not isinstance(overrides.get("values"), dict):
        raise InvalidInput.for_field("--overrides", 'expected {"manifest_path": …, "values": {…}}')
    manifest_ref = overrides.get("manifest_path") or str(MANIFEST)
    if not isinstance(manifest_ref, str):
        raise InvalidInput.for_field("manifest_path", f"expected a path, got {manifest_ref!r}")
    manifest_path = Path(manifest_ref)
    if manifest is not None:
        if not manifest.is_file():
            raise InvalidInput.for_field("--manifest", f"{manifest}: no such file")
        manifest_path = manifest
    elif not manifest_path.is_absolute():
        root = project_root or _project_of(overrides_path)
        manifest_path = root / manifest_ref
        if not manifest_path.is_file():
            raise InvalidInput.for_field(
                "manifest_path",
                f"{manifest_path}: no such file (relative paths resolve against the project root {root})",
            )
    what = "--manifest" if manifest else "manifest_path"
    knobs = validate_manifest(_read(manifest_path, what), lines=knob_lines(manifest_path.read_text()))
    problems: list[dict[str, Any]] = []
    for knob_id, value in overrides["values"].items():
        field = f"values.{knob_id}"
        try:
            if knob_id not in knobs:
                raise InvalidInput.for_field(field, "not declared in the knob manifest")
            _check_value(knobs[knob_id], value, field)
        except InvalidInput as exc:
            problems.extend(exc.details["errors"])
    if problems:
        raise InvalidInput.for_fields(problems)
    return manifest_path, knobs, dict(overrides["values"])


def _project_of(overrides_path: Path) -> Path:
    here = overrides_path.resolve().parent
    for folder in (here, *here.parents):
        if folder.name == ".lab":
            return folder.parent
    return Path.cwd()


def apply_overrides(
    config: dict[str, Any], overrides_path: Path, project_root: Path | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config with every override applied, and the applied values; aborts on any invalid override."""
    _, knobs, values = load_overrides(overrides_path, project_root)
    out = copy.deepcopy(config)
    for knob_id, value in values.items():
        _set_pointer(out, str(knobs[knob_id]["json_pointer"]), value, f"values.{knob_id}")
    return out, values


def check_pointers(config: dict[str, Any], knobs: dict[str, dict[str, Any]]) -> None:
    """Every knob points into the experiment (its parent exists), so an override can never go astray."""
    probe = copy.deepcopy(config)
    problems: list[dict[str, Any]] = []
    for knob_id, knob in knobs.items():
        try:
            _set_pointer(probe, str(knob["json_pointer"]), None, f"{knob_id}.json_pointer")
        except InvalidInput as exc:
            problems.extend(exc.details["errors"])
    if problems:
        raise InvalidInput.for_fields(problems)


def init_files(*, force: bool) -> list[str]:
    """Write the default manifest and an empty overrides file; refuses to overwrite unless ``force``."""
    existing = [str(p) for p in (MANIFEST, OVERRIDES) if p.exists()]
    if existing and not force:
        raise InvalidInput.for_field("--force", f"{', '.join(existing)} exist; pass --force to overwrite")
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    MANIFEST.write_text(json.dumps({"knobs": DEFAULT_KNOBS}, indent=2) + "\n")
    OVERRIDES.write_text(json.dumps({"manifest_path": str(MANIFEST), "values": {}}, indent=2) + "\n")
    return [str(MANIFEST), str(OVERRIDES)]
