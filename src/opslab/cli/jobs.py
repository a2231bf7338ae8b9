"""``opslab worker``."""

from __future__ import annotations

from typing import Annotated

import typer

from opslab.cli.context import console, local_runtime, settings
from opslab.cli.serve import startup_lines
from opslab.errors import InvalidInput


def worker(
    burst: Annotated[bool, typer.Option(help="Exit when the queue is empty.")] = False,
    name: Annotated[str | None, typer.Option(help="Worker name (default: host and pid).")] = None,
) -> None:
    """Run jobs and lab trials (`lab run --executor rq`) from Redis (needs OPSLAB_REDIS_URL); start as many
    as you like, on any machine (lab trials: sharing the runs folder)."""
    s = settings()
    if not s.redis_url:
        raise InvalidInput.for_field(
            "OPSLAB_REDIS_URL",
            "`opslab worker` needs Redis; the embedded backend runs jobs inside `opslab serve`",
        )
    from opslab.jobs import RqBackend, run_worker

    rt = local_runtime(s, all_work=True)
    assert isinstance(rt.backend, RqBackend)
    runner, reaper = rt.worker_runner()
    console.print(f"opslab worker on {s.redis_url} ({runner.owner})")
    for _, line in startup_lines(s):
        console.print(line, highlight=False, soft_wrap=True)
    try:
        run_worker(rt.backend, runner, reaper, burst=burst, name=name)
    finally:
        rt.close()
