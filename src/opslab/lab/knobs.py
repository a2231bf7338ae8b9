"""Parameter overrides (knobs): a manifest declares tunable JSON pointers with types and bounds; an
overrides file sets values by knob id. Every problem is refused naming the field, before anything runs."""

from __future__ import annotations

import copy
import json
import math
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


def validate_manifest(manifest: Any) -> dict[str, dict[str, Any]]:
    """The manifest's knobs by id; each must have an id, a JSON pointer, a known type, sane bounds."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("knobs"), list):
        raise InvalidInput.for_field("manifest", 'expected {"knobs": [...]}')
    knobs: dict[str, dict[str, Any]] = {}
    for i, knob in enumerate(manifest["knobs"]):
        where = f"knobs[{i}]"
        if not isinstance(knob, dict):
            raise InvalidInput.for_field(where, "expected an object")
        knob_id = knob.get("id")
        if not isinstance(knob_id, str) or not knob_id:
            raise InvalidInput.for_field(f"{where}.id", "a non-empty string is required")
        if knob_id in knobs:
            raise InvalidInput.for_field(f"{where}.id", f"{knob_id!r} is declared twice")
        _pointer_parts(str(knob.get("json_pointer", "")), f"{where}.json_pointer")
        if not isinstance(knob.get("type"), str) or knob["type"] not in _TYPES:
            raise InvalidInput.for_field(
                f"{where}.type", f"one of {sorted(_TYPES)}, got {knob.get('type')!r}"
            )
        for bound in ("minimum", "maximum"):
            b = knob.get(bound)
            if bound in knob and (
                not isinstance(b, int | float) or isinstance(b, bool) or not math.isfinite(b)
            ):
                raise InvalidInput.for_field(f"{where}.{bound}", "must be a finite number")
        if "minimum" in knob and "maximum" in knob and knob["minimum"] > knob["maximum"]:
            raise InvalidInput.for_field(f"{where}.minimum", "is above the maximum")
        for key, allowed in (("role", ROLES), ("scientific_role", SCIENTIFIC_ROLES)):
            if key in knob and knob[key] not in allowed:
                raise InvalidInput.for_field(f"{where}.{key}", f"one of {list(allowed)}, got {knob[key]!r}")
        knobs[knob_id] = knob
    return knobs


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
    knobs = validate_manifest(_read(manifest_path, "--manifest" if manifest else "manifest_path"))
    for knob_id, value in overrides["values"].items():
        if knob_id not in knobs:
            raise InvalidInput.for_field(f"values.{knob_id}", "not declared in the knob manifest")
        _check_value(knobs[knob_id], value, f"values.{knob_id}")
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
    for knob_id, knob in knobs.items():
        _set_pointer(probe, str(knob["json_pointer"]), None, f"{knob_id}.json_pointer")


def init_files(*, force: bool) -> list[str]:
    """Write the default manifest and an empty overrides file; refuses to overwrite unless ``force``."""
    existing = [str(p) for p in (MANIFEST, OVERRIDES) if p.exists()]
    if existing and not force:
        raise InvalidInput.for_field("--force", f"{', '.join(existing)} exist; pass --force to overwrite")
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    MANIFEST.write_text(json.dumps({"knobs": DEFAULT_KNOBS}, indent=2) + "\n")
    OVERRIDES.write_text(json.dumps({"manifest_path": str(MANIFEST), "values": {}}, indent=2) + "\n")
    return [str(MANIFEST), str(OVERRIDES)]
