"""Parameter overrides (knobs): a manifest declares tunable JSON pointers; an overrides file sets them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from opslab.errors import InvalidInput

_TYPES: dict[str, type | tuple[type, ...]] = {
    "integer": int,
    "number": (int, float),
    "string": str,
    "boolean": bool,
}


def _read(path: Path, what: str) -> Any:
    if not path.is_file():
        raise InvalidInput.for_field(what, f"{path}: no such file")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise InvalidInput.for_field(what, f"{path}: not JSON: {exc}") from None


def _set_pointer(doc: Any, pointer: str, value: Any) -> None:
    if not pointer.startswith("/"):
        raise InvalidInput.for_field("json_pointer", f"{pointer!r} must start with '/'")
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]
    node = doc
    for part in parts[:-1]:
        if not isinstance(node, dict) or part not in node:
            raise InvalidInput.for_field(
                "json_pointer", f"{pointer}: {part!r} does not exist in the experiment"
            )
        node = node[part]
    if not isinstance(node, dict):
        raise InvalidInput.for_field("json_pointer", f"{pointer}: parent is not a mapping")
    node[parts[-1]] = value


def apply_overrides(config: dict[str, Any], overrides_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config with every override applied, and the applied values; aborts on any invalid override."""
    overrides = _read(overrides_path, "--overrides")
    if not isinstance(overrides, dict) or not isinstance(overrides.get("values"), dict):
        raise InvalidInput.for_field("--overrides", 'expected {"manifest_path": …, "values": {…}}')
    manifest_ref = overrides.get("manifest_path") or ".lab/knobs/manifest.json"
    manifest_path = Path(manifest_ref)
    if not manifest_path.is_absolute():
        # Relative to the project root: the overrides file lives in .lab/knobs/ by convention.
        root = overrides_path.resolve().parent
        while root.name in ("knobs", ".lab") and root.parent != root:
            root = root.parent
        manifest_path = root / manifest_ref
    manifest = _read(manifest_path, "manifest_path")
    knobs = {k["id"]: k for k in manifest.get("knobs", []) if isinstance(k, dict) and "id" in k}
    out = copy.deepcopy(config)
    for knob_id, value in overrides["values"].items():
        knob = knobs.get(knob_id)
        if knob is None:
            raise InvalidInput.for_field(f"values.{knob_id}", "not declared in the knob manifest")
        expected = _TYPES.get(str(knob.get("type")))
        if expected and (
            not isinstance(value, expected) or (knob["type"] != "boolean" and isinstance(value, bool))
        ):
            raise InvalidInput.for_field(f"values.{knob_id}", f"expected {knob['type']}, got {value!r}")
        if "minimum" in knob and value < knob["minimum"]:
            raise InvalidInput.for_field(
                f"values.{knob_id}", f"{value} is below the minimum {knob['minimum']}"
            )
        if "maximum" in knob and value > knob["maximum"]:
            raise InvalidInput.for_field(
                f"values.{knob_id}", f"{value} is above the maximum {knob['maximum']}"
            )
        _set_pointer(out, str(knob["json_pointer"]), value)
    return out, dict(overrides["values"])
