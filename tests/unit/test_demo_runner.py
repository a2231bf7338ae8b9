"""The demo's bookkeeping: a step that fails is reported with its reason and does not stop the next."""

from __future__ import annotations

import io

from rich.console import Console

from opslab.demo.runner import _run_step, _summary
from opslab.demo.steps import Shown
from opslab.errors import Unavailable


def test_a_failed_step_is_reported_and_the_summary_says_so() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200)

    def broken() -> Shown:
        raise Unavailable("the sandbox target did not answer")

    outcomes = [
        _run_step(console, "canary", "a flag change", broken),
        _run_step(console, "autoops", "builds", lambda: Shown("choice: default (51%)", "http://x/ui/builds")),
    ]
    assert [o.ok for o in outcomes] == [False, True]
    assert outcomes[0].result == "FAILED: the sandbox target did not answer" and outcomes[0].where == ""
    _summary(console, outcomes, "http://x", 12.0)
    text = out.getvalue()
    assert "FAILED the sandbox target did not answer" in text and "1/2 steps ok" in text
    assert "http://x/ui/builds" in text and "http://x/ui" in text
