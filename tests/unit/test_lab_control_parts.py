"""The parts of controlling runs, one behaviour at a time: the control file and its gate, checkpoint
selection, --set overrides, replay comparison, interruptions, secret selection for bundles."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from opslab.errors import InvalidInput
from opslab.lab import RunInterrupted, TrialRecord, interrupt_on_signals, parse_sets, read_control
from opslab.lab.control import Gate, write_control
from opslab.lab.fork import apply_sets, select_checkpoint
from opslab.lab.publish import secret_variables
from opslab.lab.replay import compare_records


def test_a_run_without_a_control_file_runs_and_the_gate_follows_every_write(tmp_path: Path) -> None:
    assert read_control(tmp_path).state == "running"
    gate = Gate(tmp_path)
    assert gate.paused() is False
    write_control(tmp_path, "paused", "lunch")
    assert gate.paused() is True and read_control(tmp_path).reason == "lunch"
    on_disk = json.loads((tmp_path / "control.json").read_text())
    assert on_disk["schema_version"] == 1 and on_disk["state"] == "paused" and on_disk["updated_at"]
    write_control(tmp_path, "running")
    assert gate.paused() is False
    write_control(tmp_path, "paused")
    assert gate.paused() is True
    (tmp_path / "control.json").write_text('{"state": "paus')  # half written, or hand-edited badly
    assert gate.paused() is True, "a broken file keeps the state in force"
    (tmp_path / "control.json").unlink()
    assert gate.paused() is False


def test_a_paused_gate_waits_until_resumed_or_stopping(tmp_path: Path) -> None:
    gate = Gate(tmp_path)
    assert gate.wait(lambda: True) is True  # not paused: at once
    write_control(tmp_path, "paused")
    assert gate.wait(lambda: True) is False  # paused and the runner stopping: give up
    asked = []

    def resume_on_second_look() -> bool:
        asked.append(1)
        if len(asked) == 2:
            write_control(tmp_path, "running")
        return False

    assert gate.wait(resume_on_second_look) is True and len(asked) == 2


CHECKPOINTS = [
    {"path": "a.pt", "label": "warmup"},
    {"path": "b.pt", "label": "7"},
    {"path": "c.pt", "label": "warmup"},
    {"path": "d.pt"},
]


@pytest.mark.parametrize(
    ("at", "index"),
    [
        ("warmup", 2),  # the last with that label
        ("last", 3),
        ("0", 0),
        ("-1", 3),
        ("-4", 0),
        ("7", 1),  # a label first...
        ("index:3", 3),  # ...unless an index is asked for
        ("label:7", 1),
    ],
)
def test_a_checkpoint_is_selected_by_label_last_or_index(at: str, index: int) -> None:
    assert select_checkpoint(CHECKPOINTS, at, "trial_1")[0] == index


@pytest.mark.parametrize("at", ["4", "-5", "nope", "label:last", "index:warmup"])
def test_a_selector_matching_nothing_is_refused_listing_the_checkpoints(at: str) -> None:
    with pytest.raises(InvalidInput) as err:
        select_checkpoint(CHECKPOINTS, at, "trial_1")
    assert err.value.details["errors"][0]["field"] == "--at"
    assert [c["path"] for c in err.value.details["available"]] == ["a.pt", "b.pt", "c.pt", "d.pt"]
    with pytest.raises(InvalidInput, match="reported no checkpoints"):
        select_checkpoint([], "last", "trial_1")


def test_set_values_are_json_when_they_parse_and_dotted_keys_nest() -> None:
    sets = parse_sets(["lr=0.5", "name=adam", "flags=[1, 2]", "on=true", "x=NaN", "empty=", "opt.beta=0.9"])
    assert sets == {
        "lr": 0.5,
        "name": "adam",
        "flags": [1, 2],
        "on": True,
        "x": "NaN",
        "empty": "",
        "opt.beta": 0.9,
    }
    bindings = {"opt": {"name": "sgd"}, "lr": 0.1}
    out = apply_sets(bindings, sets)
    assert out["opt"] == {"name": "sgd", "beta": 0.9} and out["lr"] == 0.5 and out["flags"] == [1, 2]
    assert bindings == {"opt": {"name": "sgd"}, "lr": 0.1}, "the original bindings are left alone"
    assert apply_sets({}, {"a.b.c": 1}) == {"a": {"b": {"c": 1}}}
    with pytest.raises(InvalidInput, match=r"the binding lr is 0.1, not an object"):
        apply_sets(bindings, {"lr.x": 1})
    for bad in ("novalue", "=1", "a..b=1"):
        with pytest.raises(InvalidInput, match="KEY=VALUE"):
            parse_sets([bad])


def record(**fields: object) -> TrialRecord:
    base: dict[str, object] = {
        "trial_id": "trial_1",
        "variant_id": "v",
        "task_id": "t",
        "replication": 1,
        "seed": 1,
        "outcome": "success",
    }
    return TrialRecord.model_validate({**base, **fields})


def test_a_replay_comparison_names_every_difference_by_json_path() -> None:
    a = record(metrics={"acc": 1.0, "n": 3, "ok": True}, result={"items": [{"id": 1}, {"id": 2}], "gone": 1})
    assert compare_records(a, a) == []
    assert (
        compare_records(a, record(metrics={"acc": 1, "n": 3, "ok": True}, result=a.result)) == []
    )  # 1 == 1.0
    b = record(
        outcome="failure",
        metrics={"acc": 0.5, "n": 3, "ok": 1, "new": 2},
        result={"items": [{"id": 1}, {"id": 3}], "extra": None},
    )
    found = {d.field: (d.change, d.original, d.replay) for d in compare_records(a, b)}
    assert found == {
        "outcome": ("changed", "success", "failure"),
        "metrics.acc": ("changed", 1.0, 0.5),
        "metrics.ok": ("changed", True, 1),  # true is not 1 in JSON
        "metrics.new": ("added", None, 2),
        "result.items[1].id": ("changed", 2, 3),
        "result.gone": ("removed", 1, None),
        "result.extra": ("added", None, None),
    }
    ignored = compare_records(a, b, ["metrics", "result.items", "outcome"])
    assert {d.field for d in ignored} == {"result.gone", "result.extra"}
    shorter = compare_records(a, record(metrics=a.metrics, result={"items": [], "gone": 1}))
    assert [(d.field, d.change) for d in shorter] == [("result.items", "changed")]


def test_an_interruption_is_a_keyboard_interrupt_that_says_where_the_run_stands(tmp_path: Path) -> None:
    stop = RunInterrupted("SIGTERM", run_dir=tmp_path / "run_1", status="paused")
    assert isinstance(stop, KeyboardInterrupt) and not isinstance(stop, Exception)
    body = stop.to_dict()
    assert body["code"] == "interrupted" and stop.exit_code == 130
    assert body["details"] == {
        "signal": "SIGTERM",
        "run_id": "run_1",
        "run_dir": str(tmp_path / "run_1"),
        "status": "paused",
    }
    assert "--resume run_1" in body["message"] and "is paused" in body["message"]
    assert RunInterrupted("SIGINT").to_dict()["details"] == {"signal": "SIGINT"}


def test_within_the_block_sigterm_interrupts_once_and_the_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RunInterrupted) as err, interrupt_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # a second one, while handling the first: ignored
    assert err.value.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_bundle_masks_env_allow_and_secret_looking_variables_longest_first() -> None:
    frozen = {"runtime": {"env_allow": ["PLAIN", "ABSENT", "TINY"]}}
    env = {
        "PLAIN": "plain-value",
        "TINY": "x1",
        "MY_API_KEY": "key-123456",
        "HOME": "/home/me",
        "GH_TOKEN": "k",
    }
    masked = secret_variables(frozen, env)
    assert masked == {"PLAIN": "plain-value", "MY_API_KEY": "key-123456"}  # too short to mask: left
    assert list(masked) == ["PLAIN", "MY_API_KEY"]
    assert secret_variables({"runtime": {}}, {"DB_PASSWORD": "hunter22"}) == {"DB_PASSWORD": "hunter22"}
    assert secret_variables("not a config", {}) == {}
