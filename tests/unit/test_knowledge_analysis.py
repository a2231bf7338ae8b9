"""Error normalisation and synonyms in the knowledge index: one failure's many wordings meet, and the noise
of logs (versions, ports, timestamps, hashes) matches nothing by chance."""

from __future__ import annotations

import pytest

from opslab.knowledge import KnowledgeBase, analyze, normalize


def concepts(text: str) -> set[str]:
    return {t for t in analyze(text) if t.startswith("≈")}


@pytest.mark.parametrize(
    "wording",
    [
        "OOMKilled",
        "Error: Process completed with exit code 137.",
        "process didn't exit successfully (signal: 9, SIGKILL: kill)",
        "java.lang.OutOfMemoryError: Java heap space",
        "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
        "c++: fatal error: Killed signal terminated program cc1plus",
    ],
)
def test_the_wordings_of_an_out_of_memory_kill_share_one_concept(wording: str) -> None:
    assert "≈oom" in concepts(wording)


def test_camel_case_and_letter_digit_runs_are_split() -> None:
    assert normalize("OOMKilled ImagePullBackOff 4GB") == "oom killed image pull back off 4 gb"
    assert analyze("runner with 4GB") == analyze("runner with 4 GB")


def test_noise_is_dropped_and_only_three_digit_numbers_stay() -> None:
    text = (
        "2026-11-24T21:09:01.123Z flask (3.0.0) sha256:9754f630a32abfdbb76386abe1bc1e706c982db2 "
        "at 10.0.3.7:9000 pid 18734 exit 137 HTTP 404 after 2 tries"
    )
    words = analyze(text)
    assert "137" in words and "404" in words
    assert not {
        "2026",
        "11",
        "0",
        "3",
        "9000",
        "18734",
        "2",
        "9754f630a32abfdbb76386abe1bc1e706c982db2",
    } & set(words)


def test_a_query_counts_each_concept_once_a_document_once_per_wording() -> None:
    log = "exit code 137\nOOMKilled\nout of memory"
    assert analyze(log, query=True).count("≈oom") == 1
    assert analyze(log).count("≈oom") == 3


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("OOMKilled", "build-oom"),
        ("pull access denied for acme/app, repository does not exist", "build-image-pull"),
        ("AssertionError: assert 500 == 201", "build-flaky-test"),
        (
            "Because no versions of flask match >3.0,<4.0, version solving failed.",
            "build-dependency-resolution",
        ),
    ],
)
def test_an_error_in_other_words_finds_its_runbook_first(error: str, expected: str) -> None:
    hits = KnowledgeBase.load().search(error, k=3)
    assert hits and hits[0].document.id == expected, [(h.document.id, h.score) for h in hits]
