"""`opslab canary run --url`: the plan runs as a job of a running service; the CLI follows its SSE stream
and exits with the verdict's code, so a CI pipeline can gate a rollout on it. ``${ENV}`` references in
the plan are resolved by the service, in its own environment: the secret never travels with the plan."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opslab.cli.canary_live import RunDisplay, echo_unwrapped
from opslab.cli.context import console, err_console, print_json, settings
from opslab.errors import OperationFailed

if TYPE_CHECKING:
    from opslab.canary import Plan, RunRecord


def run_remote(plan: Plan, url: str, *, dry_run: bool, as_json: bool) -> int:
    from opslab import canary
    from opslab.client import OpslabClient

    display = RunDisplay((err_console if as_json else console).rich, enabled=not as_json)
    with OpslabClient.from_settings(settings(), url) as client:
        created = client.create_canary(plan.model_dump(mode="json", exclude_unset=True), dry_run=dry_run)
        display.step("Submitted", 0, f"canary run {created.canary_run_id} on {url}")
        last = 0
        for event in client.stream_canary(created.canary_run_id):
            last = event.seq
            display.step(event.step, event.pct, event.message)
        view = client.get_canary(created.canary_run_id)
    if as_json:
        print_json(view.model_dump(mode="json"))
    if view.status in ("failed", "crashed") or view.result is None:
        message = view.error.message if view.error else f"the job ended {view.status} (last event {last})"
        err_console.print(f"canary run {created.canary_run_id} failed: {message}", soft_wrap=True)
        return OperationFailed.exit_code
    result = view.result
    if isinstance(result, canary.DryRun):
        if not as_json:
            echo_unwrapped(result.model_dump_json(indent=2))
        return 0
    if not as_json:
        rollback = canary.rollback_command(plan, result.previous_flags)
        echo_unwrapped(f"{_summary(result, url, created.canary_run_id)}\n\nROLLBACK\n{rollback}")
    return canary.exit_code_of(result.decision, blocked=result.blocked, restore_failed=result.restore_failed)


def _summary(r: RunRecord, url: str, run_id: str) -> str:
    from opslab.canary import pct

    lines = [
        f"canary run {run_id} on {url}",
        f"- Decision: {r.decision}",
        f"- Reason: {r.reason}",
        f"- ΔP95: {pct(r.delta_p95_pct, '+.1f')}, ΔQPS: {pct(r.delta_qps_pct, '+.1f')}, "
        f"Error Rate: {pct(r.error_rate_pct, '.2f')}",
        f"- Flags Applied: {'YES' if r.applied else 'NO'}",
        *(f"- WARNING: {w}" for w in r.warnings[:6]),
        f"- Summary (on the service): {r.summary_path}",
    ]
    if r.restore_failed:
        lines.insert(3, "- BASELINE NOT RESTORED: see the summary's ROLLBACK command")
    return "\n".join(lines)
