"""`opslab lab knobs-validate` reports every problem of a knob manifest at once — each field of each knob,
with the line the knob starts on — and every bad override, exit code 2; not only the first one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from opslab.errors import InvalidInput
from opslab.lab.knobs import knob_lines, validate_manifest
from tests.conftest import ROOT
from tests.e2e.conftest import clean_env, run_cli

KNOBS = [
    {"id": "design.replications", "json_pointer": "/design/replications", "type": "float"},  # bad type
    {"id": "design.random_seed", "json_pointer": "/design/random_seed", "type": "integer", "minimum": "zero"},
    {"id": "ok.knob", "json_pointer": "/design/replications", "type": "integer", "minimum": 1},
    {"id": "design.replications", "json_pointer": "nowhere", "role": "boss"},  # three problems
]


def test_every_problem_of_every_knob_is_named_with_its_line() -> None:
    text = json.dumps({"knobs": KNOBS}, indent=2)
    lines = knob_lines(text)
    assert lines == [3, 8, 14, 20]
    with pytest.raises(InvalidInput) as caught:
        validate_manifest(json.loads(text), lines=lines)
    found = [(e["field"], e["line"]) for e in caught.value.details["errors"]]
    assert found == [
        ("knobs[0].type", 3),
        ("knobs[1].minimum", 8),
        ("knobs[3].id", 20),
        ("knobs[3].json_pointer", 20),
        ("knobs[3].type", 20),
        ("knobs[3].role", 20),
    ]
    assert "(and 5 more)" in caught.value.message
    assert knob_lines('["not", "an object"]') is None and knob_lines("{") is None


def test_knobs_validate_prints_every_problem_and_exits_2(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    shutil.copytree(ROOT / "tests" / "fixtures" / "lab" / "proj", proj)
    assert run_cli("lab", "knobs-init", env=clean_env(), cwd=proj).returncode == 0
    manifest = proj / ".lab" / "knobs" / "manifest.json"
    manifest.write_text(json.dumps({"knobs": KNOBS}, indent=2))
    r = run_cli("lab", "knobs-validate", env=clean_env(), cwd=proj)
    assert r.returncode == 2 and "6 problems" in r.stderr, r.stderr
    for line in ("knobs[0].type", "knobs[1].minimum: must be a finite number (line 8)", "knobs[3].role"):
        assert line in r.stderr
    r = run_cli("lab", "knobs-validate", "--json", env=clean_env(), cwd=proj)
    assert r.returncode == 2 and len(json.loads(r.stdout)["error"]["details"]["errors"]) == 6

    manifest.write_text(json.dumps({"knobs": [KNOBS[2]]}))
    overrides = proj / ".lab" / "knobs" / "overrides.json"
    doc = json.loads(overrides.read_text())
    doc["values"] = {"ok.knob": 0, "ghost": 1, "other.ghost": 2}
    overrides.write_text(json.dumps(doc))
    r = run_cli("lab", "knobs-validate", "--json", env=clean_env(), cwd=proj)
    fields = [e["field"] for e in json.loads(r.stdout)["error"]["details"]["errors"]]
    assert r.returncode == 2 and fields == ["values.ok.knob", "values.ghost", "values.other.ghost"]
