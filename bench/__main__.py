"""``python -m bench`` (``make bench``): every benchmark with bounded sizes (about half an hour here, the
A/A canaries a third of it), one after the other (they measure time: nothing else should run meanwhile),
then ``docs/performance.md``.

Each writes ``bench/results/<name>-<date>.json`` with its floor or peer measured in the same run. A
benchmark that needs an optional extra it does not have is skipped with the reason (its last result stays
on the page, with its date); one that crashes or runs past its time fails the suite after the rest ran.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time

from bench._common import ROOT
from bench.performance import main as write_page
from opslab import proc

# name, arguments, time limit (s), the module it cannot run without (None: always runs)
SUITE: tuple[tuple[str, tuple[str, ...], float, str | None], ...] = (
    ("rca_eval", (), 300, None),
    ("rca", ("--samples", "50", "--jobs", "300"), 300, None),
    ("ingest", (), 400, None),
    ("overview", ("--repeats", "7"), 600, None),
    ("ui", ("--repeats", "7"), 600, None),
    ("soak", ("--seconds", "30"), 400, None),
    ("lab_overhead", ("--repeat", "3"), 400, None),
    ("lab_isolation", ("--trials", "400", "--repeat", "3"), 300, None),  # the acceptance check's 400 trials
    ("canary", ("--seconds", "10", "--seeds", "3"), 600, None),
    ("canary_aa", ("--runs", "20"), 1500, None),
    ("responder", ("--repeat", "1"), 1800, None),
    ("autoops", ("--seeds", "5", "--budget", "500"), 900, "stable_baselines3"),
)


def main(argv: list[str]) -> int:
    only = set(argv)
    failed: list[str] = []
    started = time.monotonic()
    for name, args, limit, needs in SUITE:
        if only and name not in only:
            continue
        if needs and importlib.util.find_spec(needs) is None:
            print(f"{name:<14} skipped: needs {needs} (uv sync --extra bench)", flush=True)  # noqa: T201
            continue
        t0 = time.monotonic()
        result = proc.run(
            [sys.executable, "-m", f"bench.{name}", *args],
            cwd=ROOT,
            timeout_s=limit,
            stdout=subprocess.DEVNULL,
            stderr=ROOT / "bench" / "results" / f".{name}.log",
        )
        took = time.monotonic() - t0
        ok = result.ok
        state = "ok" if ok else "TIMED OUT" if result.timed_out else f"FAILED (exit {result.returncode})"
        print(f"{name:<14} {state:<18} {took:6.0f} s", flush=True)  # noqa: T201
        if not ok:
            failed.append(name)
    write_page()
    print(f"suite: {time.monotonic() - started:.0f} s; failed: {', '.join(failed) or 'none'}")  # noqa: T201
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
