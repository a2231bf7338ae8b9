"""The localiser reads agent systems it was not fitted on: no agent name or house phrase of the dev systems
in it, roles from structure, the same answer whatever the agents are called, calibration that never reads
the held-out system's annotations, and abstention that lists the candidates."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from opslab.errors import InvalidInput
from opslab.rca import analyze_run
from opslab.rca.baselines import baseline_figures, first_error, last_speaker, majority_agent
from opslab.rca.calibrate import abstention_threshold, fit_calibration, inputs, reliability
from opslab.rca.evaluate import Truth, same_agent
from opslab.rca.labels import load_labels
from opslab.rca.localize import localize
from opslab.rca.scoring import load_localizer, shipped
from opslab.rca.signals import detect
from opslab.rca.transcript import read_transcript
from opslab.rca.transcript_report import transcript_report
from opslab.rca.validate import examples_of, leave_one_system_out
from opslab.telemetry import AgentRunIn, import_runs
from tests.conftest import FIXTURES
from tests.unit.test_rca_transcripts import FILTERED, MAGENTIC, transcript

RCA = Path(__file__).resolve().parents[2] / "src" / "opslab" / "rca"
# The dev systems' agent names and house phrases (Magentic-One's ledger keys and notes, τ-bench's stop
# token and hand-off tool, Azure's filter code): the localiser may read none of them.
FORBIDDEN = (
    "websurfer",
    "filesurfer",
    "computerterminal",
    "computer_terminal",
    "orchestrat",
    "magentic",
    "is_request_satisfied",
    "is_progress_being_made",
    "is_in_loop",
    "instruction_or_question",
    "next speaker",
    "next_speaker",
    "###stop###",
    "transfer_to_human",
    "responsibleai",
    "tau-bench",
    "tau_bench",
    "retail",
)
# The localiser's modules (the importers and the LLM prompts may name formats; these may not).
LOCALISER = (
    "transcript.py",
    "phrases.py",
    "signals.py",
    "features.py",
    "policy.py",
    "localize.py",
    "scoring.py",
    "calibrate.py",
    "train.py",
    "transcript_report.py",
    "baselines.py",
)
AGENTRX = FIXTURES / "agentrx"


def _literals(path: Path) -> list[tuple[int, str]]:
    """Every string constant in the module that is not a docstring."""
    tree = ast.parse(path.read_text())
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
    ]


def test_no_feature_weight_or_rule_keys_on_a_dev_system_name_or_phrase() -> None:
    hits = [
        f"{name}:{line}: {word!r} in {text[:60]!r}"
        for name in LOCALISER
        for line, text in _literals(RCA / name)
        for word in FORBIDDEN
        if word in text.lower()
    ]
    model = json.loads((RCA / "localizer.json").read_text())
    names = [*model["step_weights"], *model["agent_weights"]]
    hits += [f"localizer.json: {word!r} in {n!r}" for n in names for word in FORBIDDEN if word in n.lower()]
    assert hits == []


def test_the_scan_would_see_a_name_in_a_pattern(tmp_path: Path) -> None:
    planted = tmp_path / "m.py"
    planted.write_text(
        '"""Orchestrator in a docstring is fine."""\nLEAD = re.compile(r"orchestrat|planner")\n'
    )
    assert [text for _, text in _literals(planted)] == ["orchestrat|planner"]


RENAMED = {"human": "customer", "Orchestrator": "Conductor", "WebSurfer": "Browser"}


def _renamed(messages: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for role, text in messages:
        for old, new in RENAMED.items():
            role, text = role.replace(old, new), text.replace(old, new)
        out.append((role, text))
    return out


def test_roles_come_from_structure_whatever_the_agents_are_called() -> None:
    tr = read_transcript(transcript(_renamed(MAGENTIC)))
    assert [t.role for t in tr.turns] == ["user", "lead", "instruction", "worker"] and tr.lead == "conductor"
    # No addressing: a hub the other acting agents always speak after is the lead.
    hub = [("user", "Find the report.")]
    for i in range(3):
        hub += [("Alpha", f"Beta, fetch page {i}."), ("Beta", f"Page {i}."), ("Alpha", "Gamma, check it.")]
        hub += [("Gamma", f"Checked {i}.")]
    assert read_transcript(transcript(hub)).lead == "alpha"
    peers = [("user", "go"), ("Alpha", "a"), ("Beta", "b"), ("Alpha", "c"), ("Beta", "d")]
    assert read_transcript(transcript(peers)).lead is None
    # An executor is a tool by what it says, not by its name.
    ran = [("user", "Count the rows."), ("Coder", "```python\nprint(3)\n```"), ("Box", "exitcode: 0\n3")]
    ran += [
        ("Coder", "```python\nprint(4)\n```"),
        ("Box", "exit code: 1\nTraceback (most recent call last):"),
    ]
    roles = [t.role for t in read_transcript(transcript(ran)).turns]
    assert roles == ["user", "assistant", "tool", "assistant", "tool"]


def test_renaming_every_agent_changes_no_answer() -> None:
    for messages in (MAGENTIC, [*MAGENTIC[:3], ("WebSurfer", "I clicked 'Next'."), *MAGENTIC[3:]]):
        a, b = analyze_run(transcript(messages)), analyze_run(transcript(_renamed(messages)))
        assert (a.root_cause_step, a.step_probability) == (b.root_cause_step, b.step_probability)
        assert same_agent(RENAMED.get(a.responsible_agent or "", a.responsible_agent), b.responsible_agent)


def test_the_baselines_answer_as_described() -> None:
    tr = read_transcript(
        transcript(
            [
                ("user", "Run it."),
                ("Coder", "```sh\nmake\n```"),
                ("terminal", "make: *** [all] Error 2"),
                ("Coder", "Done, it built."),
            ]
        )
    )
    assert first_error(tr) == (3, "Coder")  # the terminal's error is its caller's
    assert last_speaker(tr) == (4, "Coder")
    truth = {"r": Truth(trajectory_id="r", step_number=3, agent="coder")}
    figs = baseline_figures("first_error", {"r": tr}, truth)
    assert figs.step_accuracy == 1.0 and figs.agent_accuracy == 1.0 and figs.confident_wrong_rate == 0.0
    many = {str(i): Truth(trajectory_id=str(i), step_number=1, agent=a) for i, a in enumerate("AAB")}
    assert majority_agent(many) == ("A", round(2 / 3, 4))


def test_calibration_follows_how_often_answers_were_right() -> None:
    xs = [inputs(w, False) for w in (0.1, 0.2, 0.3, 0.7, 0.8, 0.9) * 5]
    right = [w >= 0.5 for w in (0.1, 0.2, 0.3, 0.7, 0.8, 0.9) * 5]
    cal = fit_calibration(xs, right, "held-out-folds")
    low, high = cal.probability(inputs(0.1, False)), cal.probability(inputs(0.9, False))
    assert 0 < low < 0.5 < high < 1 and cal.fitted_on == 30
    bins = reliability([0.05, 0.05, 0.9], [False, False, True])
    assert [(b.n, b.accuracy) for b in bins] == [(2, 0.0), (1, 1.0)]
    # Abstain only where held-out answers were of no use; never on too few of them.
    assert abstention_threshold([0.01] * 6 + [0.5] * 4, [False] * 6 + [True] * 4) > 0.01
    assert abstention_threshold([0.01] * 3, [False] * 3) == 0.0
    assert abstention_threshold([0.01] * 10, [True, *[False] * 9]) == 0.0


def test_below_the_threshold_the_report_abstains_and_lists_the_candidates() -> None:
    unsure = dataclasses.replace(shipped(), abstain_below=1.01)
    report = transcript_report(transcript(MAGENTIC), unsure)
    assert report is not None and report.insufficient_evidence and report.root_cause_step is None
    assert report.alternatives and report.alternatives[0].step == 4 and report.hypotheses == []
    assert "below 1.01" in (report.insufficient_reason or "") and "step 4" in (
        report.insufficient_reason or ""
    )
    known = {e.evidence_id for e in report.evidence_index}
    assert all(set(a.evidence_ids) <= known for a in report.alternatives)


def _agentrx() -> tuple[list[AgentRunIn], dict[str, Truth], list[AgentRunIn], dict[str, Truth]]:
    mag = list(import_runs("magentic", AGENTRX / "magentic_dataset"))
    tau = list(import_runs("tau-bench", AGENTRX / "tau_retail" / "tau_dataset_failed.json"))
    truth = AGENTRX / "ground_truth"
    return (
        mag,
        load_labels(truth / "magentic_one_ground_truth.json"),
        tau,
        load_labels(truth / "tau_ground_truth.json"),
    )


def test_leaving_a_system_out_never_reads_its_annotations() -> None:
    mag, mag_truth, tau, tau_truth = _agentrx()
    examples = examples_of(mag, mag_truth, "magentic") + examples_of(tau, tau_truth, "tau-bench")
    wrong = {k: t.model_copy(update={"step_number": 1, "agent": "nobody"}) for k, t in tau_truth.items()}
    scrambled = examples_of(mag, mag_truth, "magentic") + examples_of(tau, wrong, "tau-bench")
    a, b = leave_one_system_out(examples, "tau-bench"), leave_one_system_out(scrambled, "tau-bench")
    assert set(a) == set(tau_truth)
    assert all(
        (p.step.n, p.step.agent, p.confidence) == (q.step.n, q.step.agent, q.confidence)
        for k, p in a.items()
        if p is not None and (q := b[k]) is not None
    )


def test_a_model_file_is_checked_before_use(tmp_path: Path) -> None:
    good = tmp_path / "m.json"
    good.write_text(json.dumps(shipped().to_json()))
    model = load_localizer(good)
    assert np.allclose(model.step.weights, shipped().step.weights, atol=1e-4)
    assert model.calibration.source == shipped().calibration.source
    cases = {
        "nope.json": None,
        "garbage.json": "{not json",
        "other.json": json.dumps({"hello": 1}),
        "future.json": json.dumps({**shipped().to_json(), "schema_version": 99}),
        "strings.json": json.dumps({**shipped().to_json(), "step_weights": {"role_user": "high"}}),
    }
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(InvalidInput) as err:
            load_localizer(path, "OPSLAB_RCA_MODEL")
        assert err.value.details["errors"][0]["field"] == "OPSLAB_RCA_MODEL"


def test_a_guardrail_stop_names_its_turn_with_a_calibrated_confidence() -> None:
    tr = read_transcript(transcript([*MAGENTIC[:3], ("WebSurfer", "I searched."), ("WebSurfer", FILTERED)]))
    loc = localize(tr, detect(tr))
    assert loc is not None and loc.pinned and loc.step.n == 5 and 0 < loc.confidence < 1
