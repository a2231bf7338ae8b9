"""``proc.close_spawning``: a dying worker stops every start first, so the harness being started as it dies
is among those it kills, and nothing starts after (a trial started after its interrupted run had ended was
seen once on a loaded machine). Each case runs in a fresh interpreter: the closing lasts a process's life."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def in_a_fresh_process(code: str) -> dict[str, object]:
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_a_start_under_way_completes_before_the_closing_and_is_there_to_kill() -> None:
    out = in_a_fresh_process(
        """
        import json, os, threading, time
        from opslab import proc

        forking = threading.Event()
        real = proc._popen

        def slow_popen(*args, **kwargs):  # a start that takes its time, as on a loaded machine
            forking.set()
            time.sleep(0.3)
            return real(*args, **kwargs)

        proc._popen = slow_popen
        results = []
        t = threading.Thread(target=lambda: results.append(proc.run(["sleep", "30"], timeout_s=60)))
        t.start()
        forking.wait(10)
        proc.close_spawning()  # waits for the start under way
        pids = sorted(proc.running_pids())
        proc.kill_running()
        t.join(10)
        late = proc.run(["sleep", "30"], timeout_s=60)
        print(json.dumps({
            "pids": pids,
            "killed": results[0].returncode if results else None,
            "late_error": late.start_error,
            "late_pid": late.returncode,
        }))
        """
    )
    assert len(out["pids"]) == 1, "the child started as the closing came is known, to be killed"
    assert out["killed"] is not None and out["killed"] < 0  # it died of the kill, not of old age
    assert out["late_error"] and "stopping" in str(out["late_error"]) and out["late_pid"] is None


def test_closing_on_the_thread_that_is_starting_does_not_deadlock() -> None:
    """A signal handler runs on the main thread, which may itself be inside a start (one trial slot)."""
    out = in_a_fresh_process(
        """
        import json
        from opslab import proc

        with proc._spawning:  # as if interrupted between the start and its record
            proc.close_spawning()
        print(json.dumps({"error": proc.run(["true"], timeout_s=10).start_error}))
        """
    )
    assert "stopping" in str(out["error"])
