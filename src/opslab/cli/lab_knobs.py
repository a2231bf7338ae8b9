"""``opslab lab knobs-init`` and ``opslab lab knobs-validate``: the seed's parameter overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from opslab.cli.context import console
from opslab.cli.lab import JsonFlag, _emit, lab_app


@lab_app.command("knobs-init")
def knobs_init(
    as_json: JsonFlag = False, force: Annotated[bool, typer.Option(help="Overwrite.")] = False
) -> None:
    """Write .lab/knobs/manifest.json (tunable fields, types, bounds) and an empty overrides.json."""
    from opslab.lab import init_knob_files

    def body() -> dict[str, Any]:
        written = init_knob_files(force=force)
        if not as_json:
            console.print(
                f"wrote {', '.join(written)}: declare knobs in the manifest, set values in the overrides, "
                "then `opslab lab knobs-validate`"
            )
        return {"paths": written}

    _emit("knobs-init", as_json, body)


@lab_app.command("knobs-validate")
def knobs_validate(
    overrides: Annotated[Path, typer.Option("--overrides", help="Overrides file.")] = Path(
        ".lab/knobs/overrides.json"
    ),
    experiment: Annotated[
        Path, typer.Option("--experiment", help="Experiment the knobs must point into (if it exists).")
    ] = Path(".lab/experiment.yaml"),
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="Knob manifest (default: the overrides' manifest_path)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check the manifest and every override (declared, typed, in bounds) and that each knob points into
    the experiment; nothing runs."""
    from opslab.lab import check_pointers, load_overrides, project_root_of, read_yaml

    def body() -> dict[str, Any]:
        checked = experiment.is_file()
        root = project_root_of(experiment) if checked else None
        manifest_path, knobs, values = load_overrides(overrides, root, manifest=manifest)
        if checked:
            config = read_yaml(experiment)
            check_pointers(config if isinstance(config, dict) else {}, knobs)
        if not as_json:
            console.print(
                f"ok: {len(knobs)} knob(s) in {manifest_path}, {len(values)} override(s) valid"
                + ("" if checked else f" ({experiment} not found: pointers not checked)")
            )
        return {
            "manifest_path": str(manifest_path),
            "knobs": sorted(knobs),
            "values": values,
            "pointers_checked": checked,
        }

    _emit("knobs-validate", as_json, body)
