"""A pool worker's handler for its runner's death: the signal comes once for each of the runner's threads
that dies, so another can arrive while the handler runs — at any point of it, and the handler must still
end the worker (one run again inside itself once waited for its own lock for ever: the worker hung and
its harnesses ran on)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# For K = 1, 2, …: a forked child runs the handler with the death signal sent again just before the K-th
# line it runs (counted by a tracer over the handler and what it calls; what it would kill is stubbed out:
# nothing runs here). Each child must end with the handler's exit code, 1; a child that has not ended
# within its time is reported as hung. Stops once the handler ran fewer than K lines (every point tried).
PROGRAM = """
    import os, signal, sys, time
    from opslab import proc
    from opslab.lab import pool

    def child(k):
        proc.kill_running = lambda: None
        pool._kill_children = lambda: None
        lines = [0]

        def tracer(frame, event, arg):
            if event == "line":
                lines[0] += 1
                if lines[0] == k:
                    os.kill(os.getpid(), signal.SIGTERM)  # another thread of the runner died, just now
            return tracer

        def handler(signum, frame):
            sys.settrace(tracer)
            pool._runner_gone(signum, frame)

        real_exit = os._exit

        def exit(code):
            sys.settrace(None)
            real_exit(code if lines[0] >= k else 100 + code)  # 101: the handler ran fewer than k lines

        os._exit = exit
        signal.signal(signal.SIGTERM, handler)
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()

    for k in range(1, 1000):
        pid = os.fork()
        if pid == 0:
            child(k)
        deadline = time.monotonic() + 30
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        if done[0] == 0:
            os.kill(pid, signal.SIGKILL)
            print(f"hung {k}")
            break
        code = os.waitstatus_to_exitcode(done[1])
        if code != 1:
            print(f"exit {code} {k}")
            break
    else:
        print("endless")
"""


def test_the_runner_gone_handler_ends_the_worker_whatever_point_another_signal_comes_at() -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PROGRAM)], capture_output=True, text=True, timeout=600
    )
    last = done.stdout.split()
    assert last[:2] == ["exit", "101"] and int(last[2]) > 3, (done.stdout, done.stderr[-2000:])
