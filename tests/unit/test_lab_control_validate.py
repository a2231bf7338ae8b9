"""validate-hooks and validate-schema: every problem found, each named by line and JSON path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opslab.errors import InvalidInput
from opslab.lab import SCHEMAS, validate_hooks, validate_schema

MANIFEST = {
    "schema_version": 1,
    "integration_level": "cli_events",
    "events": {"step": {"required": ["name"]}, "tool_call": {"required": ["tool"]}},
}


def write_lines(path: Path, *lines: object) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def problems(err: pytest.ExceptionInfo[InvalidInput]) -> list[tuple[int | None, str]]:
    return [(e.get("line"), e["field"]) for e in err.value.details["errors"]]


def test_a_good_stream_passes_with_its_counts(tmp_path: Path) -> None:
    manifest = tmp_path / "harness_manifest.json"
    manifest.write_text(json.dumps(MANIFEST))
    events = write_lines(
        tmp_path / "events.jsonl",
        {"type": "step", "name": "plan", "seq": 1, "ts": "2026-01-01T00:00:00Z"},
        "",
        {"type": "tool_call", "tool": "search", "seq": 2, "ts": 1767225601},
        {"type": "checkpoint", "path": "ckpt/1.pt", "seq": 5, "started_at": "2026-01-01T00:00:02Z"},
    )
    report = validate_hooks(events, manifest)
    assert report.events == 3 and report.types == {"step": 1, "tool_call": 1, "checkpoint": 1}
    assert report.manifest == manifest and report.integration_level == "cli_events"


def test_every_problem_of_a_stream_is_reported_by_line_and_field(tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps(MANIFEST))
    events = write_lines(
        tmp_path / "events.jsonl",
        {"type": "step", "seq": 2, "ts": "2026-01-01T00:00:05Z"},
        "{not json",
        ["an", "array"],
        {"type": "tool_call", "tool": "x", "seq": 2, "ts": "2026-01-01T00:00:01Z"},
        {"type": "mystery"},
        {"name": "no type"},
        {"type": "checkpoint", "path": 3},
        {"type": "step", "name": "n", "seq": "7", "at": "yesterday"},
        {
            "type": "step",
            "name": "n",
            "started_at": "2026-01-01T00:00:09Z",
            "ended_at": "2026-01-01T00:00:08Z",
        },
    )
    with pytest.raises(InvalidInput) as err:
        validate_hooks(events, manifest)
    assert problems(err) == [
        (1, "$.name"),
        (2, "$"),
        (3, "$"),
        (4, "$.seq"),
        (4, "$.ts"),
        (5, "$.type"),
        (6, "$.type"),
        (7, "$.path"),
        (8, "$.seq"),
        (8, "$.at"),
        (9, "$.ended_at"),
    ]
    assert err.value.message.startswith("events.jsonl line 1: $.name: required for step events (and 10 more)")
    assert "'mystery' is not declared" in err.value.details["errors"][5]["message"]


def test_without_a_manifest_any_type_goes_but_checkpoints_need_a_path(tmp_path: Path) -> None:
    events = write_lines(tmp_path / "e.jsonl", {"type": "whatever"}, {"type": "checkpoint", "label": "x"})
    with pytest.raises(InvalidInput) as err:
        validate_hooks(events)
    assert problems(err) == [(2, "$.path")] and err.value.details["manifest"] is None


def test_a_cli_basic_harness_writes_no_events_and_a_bad_manifest_is_named(tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"integration_level": "cli_basic"}))
    events = write_lines(tmp_path / "e.jsonl", {"type": "step"})
    with pytest.raises(InvalidInput, match="cli_basic writes no events"):
        validate_hooks(events, manifest)
    manifest.write_text(json.dumps({"integration_level": "loud", "events": {"x": {"needed": []}}}))
    with pytest.raises(InvalidInput) as err:
        validate_hooks(events, manifest)
    assert {e["field"] for e in err.value.details["errors"]} == {
        "m.json.integration_level",
        "m.json.events.x.needed",
    }


def test_an_unknown_schema_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(InvalidInput) as err:
        validate_schema("nope", tmp_path / "x.json")
    known = err.value.details["known"]
    assert {"trial_input", "trial_output", "experiment", "knobs_manifest", "knobs_overrides"} <= set(known)
    assert {"harness_manifest", "events", "trial_record", "manifest", "attestation", "control"} <= set(known)
    assert set(known) == set(SCHEMAS) and "trial_output" in err.value.message


def schema_problems(name: str, path: Path) -> dict[str, str]:
    with pytest.raises(InvalidInput) as err:
        validate_schema(name, path)
    assert err.value.details["schema"] == name
    return {e["field"]: e["message"] for e in err.value.details["errors"]}


def test_a_harness_output_is_checked_against_the_protocol_with_every_path(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps({"outcome": "success", "metrics": {"a": 1, "b": True, "c": None}, "result": [1]})
    )
    assert validate_schema("trial_output", good).file == good
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"outcome": "great", "metrics": {"a": "x", "b": 1}, "objective": {"name": 1}}))
    found = schema_problems("trial_output", bad)
    assert set(found) == {
        "$.outcome",
        "$.metrics.a",
        "$.objective.name",
        "$.objective.value",
        "$.objective.direction",
    }
    assert "success" in found["$.outcome"]
    (tmp_path / "text.json").write_text("not json")
    assert schema_problems("trial_output", tmp_path / "text.json") == {"$": "not JSON"}


def test_a_record_is_checked_strictly_with_union_members_merged(tmp_path: Path) -> None:
    path = tmp_path / "trial_output.json"
    path.write_text(
        json.dumps(
            {
                "trial_id": "trial_1",
                "variant_id": "v",
                "task_id": "t",
                "replication": "1",
                "seed": 5,
                "outcome": "success",
                "metrics": {"ok": 1, "bad": "x"},
            }
        )
    )
    found = schema_problems("trial_record", path)
    assert set(found) == {"$.replication", "$.metrics.bad"}
    assert found["$.metrics.bad"].startswith("Input should be a valid boolean or a valid integer")


def test_an_experiment_is_checked_from_yaml_with_paths_into_it(tmp_path: Path) -> None:
    path = tmp_path / "experiment.yaml"
    path.write_text(
        "experiment: {id: 'has space', name: x}\ndataset: {path: d.jsonl}\n"
        "runtime: {harness: {command: [python3]}, network: {mode: sideways}}\n"
        "variants: {baseline: {id: a}, treatments: [{id: b, surprise: 1}]}\n"
    )
    found = schema_problems("experiment", path)
    assert set(found) == {
        "$.experiment.id",
        "$.runtime.network.mode",
        "$.variants.treatments[0].surprise",
    }


def test_knob_files_are_checked_as_knobs_validate_checks_them(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps({"knobs": [{"id": "r", "json_pointer": "/design/replications", "type": "int"}]})
    )
    assert set(schema_problems("knobs_manifest", manifest)) == {"$.knobs[0].type"}
    manifest.write_text(
        json.dumps({"knobs": [{"id": "r", "json_pointer": "/design/replications", "type": "integer"}]})
    )
    assert validate_schema("knobs_manifest", manifest).valid
    overrides = tmp_path / "overrides.json"
    overrides.write_text(json.dumps({"manifest_path": str(manifest), "values": {"r": "two"}}))
    assert set(schema_problems("knobs_overrides", overrides)) == {"$.values.r"}


def test_an_event_stream_is_a_schema_too(tmp_path: Path) -> None:
    events = write_lines(tmp_path / "e.jsonl", {"type": "step"}, {"type": ""})
    with pytest.raises(InvalidInput) as err:
        validate_schema("events", events)
    assert problems(err) == [(2, "$.type")]
