"""The fix responder on real CI failure messages (``tests/fixtures/autoops/ci_errors.yaml``: GitHub Actions,
GitLab, Jenkins, Docker, Kubernetes, npm, pip, Poetry, Maven, Gradle, Cargo, pytest, Jest …), each labelled
with the runbook that fixes it or none. Every message must get its runbook (or "no known fix"); the
accuracy is reported in the JUnit report (``retrieval_accuracy``) and in docs/autoops.md."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from opslab.autoops import FixRequest, suggest_fix
from opslab.knowledge import KnowledgeBase

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parents[1] / "fixtures" / "autoops" / "ci_errors.yaml").read_text()
)


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load()


def test_the_labelled_set_is_large_and_covers_every_build_runbook() -> None:
    assert len(CASES) >= 30
    expected = {c["expected"] for c in CASES}
    assert {"build-oom", "build-image-pull", "build-dependency-resolution", "build-flaky-test"} <= expected
    assert {"build-timeout", "prometheus-target-down", "metrics-endpoint-404", None} <= expected


def test_every_real_ci_error_gets_its_runbook(
    kb: KnowledgeBase, record_property: Callable[[str, object], None]
) -> None:
    answers = [(case, suggest_fix(FixRequest(error=case["error"]), kb)) for case in CASES]
    misses = [
        f"{case['tool']}: {case['error'][:60]!r} -> {fix.document_id} (want {case['expected']})"
        for case, fix in answers
        if fix.document_id != case["expected"]
    ]
    accuracy = 1 - len(misses) / len(CASES)
    record_property("retrieval_accuracy", round(accuracy, 3))
    assert not misses, f"accuracy {accuracy:.1%} on {len(CASES)} messages; missed:\n" + "\n".join(misses)


@pytest.mark.parametrize(
    ("error", "suggestion"),
    [
        ("OOMKilled", "Increase CI runner memory limit"),
        (
            "Error response from daemon: pull access denied for acme/api, repository does not exist",
            "Pin the base image by digest",
        ),
        ("E       AssertionError: assert 'pending' == 'ready'", "Retry failed tests"),
    ],
)
def test_the_wordings_the_issue_named_get_their_fix(kb: KnowledgeBase, error: str, suggestion: str) -> None:
    fix = suggest_fix(FixRequest(error=error), kb)
    assert fix.suggestion.startswith(suggestion) and fix.source == "knowledge"
