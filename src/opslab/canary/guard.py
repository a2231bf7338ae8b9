"""A canary's hold on its target, crash-consistent: what it is about to change is written durably before it
changes it, and whoever looks next puts the target back if the canary died.

A canary holds the lease ``canary:<target base URL>`` (``jobs.LeaseStore``) for its whole run and renews it
by heartbeat. Before every flag change it records its intent in the lease — the baseline flags to restore
and the flags it is about to set — and only then calls the target; at the end it marks the hold settled
and releases it. Two canaries never change one target at once (the second is refused with a conflict).

A canary killed mid-run (SIGKILL, a lost machine) stops renewing; once its lease has lapsed the target's
intent is *abandoned*, and ``recover_abandoned`` restores the baseline flags, reads them back, and appends
an INTERRUPTED history row saying who restored them. It runs in the next canary on that target (before it
reads its own baseline), in ``opslab canary recover``, and periodically in the service.

The intent also names the process holding the target (``holder.HolderProcess``). When that process is
provably dead — on this host, its pid gone or another process — the hold is abandoned at once, without
waiting for the lease to lapse: ``recover_abandoned`` ends the lease in the dead holder's name (fenced by
its token, so a hold taken over meanwhile is left alone) and recovers it like a lapsed one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from opslab.canary.execute import restore
from opslab.canary.history import RunRecord
from opslab.canary.holder import HolderProcess, is_dead, this_process
from opslab.canary.loadgen import LoadSpec
from opslab.canary.model import Flags
from opslab.canary.plan import Plan
from opslab.canary.target import Json, TargetClient
from opslab.errors import Conflict
from opslab.jobs import Lease, LeaseKeeper, LeaseLost, LeaseStore

log = logging.getLogger("opslab.canary")

PREFIX = "canary:"
Phase = Literal["holding", "changing", "settled"]


class Intent(BaseModel):
    """What a canary holding a target has done or is about to do (kept in its lease)."""

    schema_version: int = 1
    run_key: str
    holder: str
    started_at: datetime
    phase: Phase = "holding"
    plan: dict[str, Any] = Field(description="The plan as JSON (${ENV} references unresolved).")
    restore: Flags | None = Field(None, description="The baseline flags, once read.")
    applying: Flags | None = Field(None, description="The flags being set now.")
    recovered_by: str | None = None
    process: HolderProcess | None = Field(None, description="The process holding the target.")


class CanaryLeases(LeaseStore, Protocol):
    def held(self, prefix: str) -> list[Lease]:
        """Unexpired leases under ``prefix`` (to find those whose holder died)."""
        ...


def lease_name(base_url: str) -> str:
    return PREFIX + base_url.rstrip("/")


class GuardedTarget:
    """A ``TargetClient`` that records its intent in the lease before every flag change."""

    def __init__(self, inner: TargetClient, leases: LeaseStore, keeper: LeaseKeeper, intent: Intent) -> None:
        self.inner, self.leases, self.keeper, self.intent = inner, leases, keeper, intent
        self._lock = threading.Lock()

    @property
    def lost(self) -> threading.Event:
        """Set when the hold lapsed: the run must stop (another process may be restoring the target)."""
        return self.keeper.lost

    def health(self) -> Json:
        return self.inner.health()

    def get_flags(self) -> Flags:
        flags = self.inner.get_flags()
        if self.intent.restore is None:
            self._record(restore=flags)  # the first read is the baseline
        return flags

    def set_flags(self, flags: Flags) -> Flags:
        self._record(phase="changing", applying=flags)
        return self.inner.set_flags(flags)

    def load(self) -> LoadSpec:
        return self.inner.load()

    def start_experiment(self, body: Json) -> Json:
        return self.inner.start_experiment(body)

    def fetch_report(self) -> str | None:
        return self.inner.fetch_report()

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()

    def _record(self, **update: Any) -> None:
        with self._lock:
            self.keeper.check()  # fencing: a hold that lapsed acts no more
            intent = self.intent.model_copy(update=update)
            renewed = self.leases.update_info(self.keeper.lease, intent.model_dump(mode="json"))
            if renewed is None:
                self.keeper.lost.set()
                raise LeaseLost(
                    f"the hold on {self.keeper.lease.name} lapsed; the target is left to recovery"
                )
            self.keeper.lease, self.intent = renewed, intent


@contextmanager
def hold_target(
    plan: Plan,
    inner: TargetClient,
    leases: LeaseStore,
    *,
    holder: str,
    run_key: str,
    ttl_s: float,
    recover: Callable[[str], object] | None = None,
) -> Iterator[GuardedTarget]:
    """Hold ``plan``'s target for one canary (see the module docstring). ``recover(name)`` first puts back
    a target an earlier canary abandoned. ``Conflict`` when a live canary holds it."""
    name = lease_name(plan.target.base_url)
    if recover is not None:
        recover(name)
    intent = Intent(
        run_key=run_key,
        holder=holder,
        started_at=datetime.now(UTC),
        plan=plan.model_dump(mode="json"),
        process=this_process(),
    )
    lease = leases.acquire(name, holder, ttl_s=ttl_s, info=intent.model_dump(mode="json"))
    if lease is None:
        current = leases.get(name)
        who = current.holder if current else "another canary"
        raise Conflict(
            f"another canary ({who}) is running on {plan.target.base_url}; wait for it, or cancel it",
            details={"target": plan.target.base_url, "holder": who},
        )
    with LeaseKeeper(leases, lease, ttl_s=ttl_s) as keeper:
        guarded = GuardedTarget(inner, leases, keeper, intent)
        try:
            yield guarded
        finally:
            if not keeper.lost.is_set():
                settled = guarded.intent.model_copy(update={"phase": "settled", "applying": None})
                done = leases.update_info(keeper.lease, settled.model_dump(mode="json"))
                leases.release(done or keeper.lease)


class Recovery(BaseModel):
    target: str
    run_key: str
    abandoned_by: str
    restored: bool
    record: RunRecord | None = None
    warnings: list[str] = Field(default_factory=list)


def recover_abandoned(
    leases: CanaryLeases,
    *,
    holder: str,
    target_of: Callable[[Plan], TargetClient],
    append: Callable[[Plan, RunRecord], None],
    name: str | None = None,
    ttl_s: float = 30.0,
) -> list[Recovery]:
    """Put back every target (or ``name`` only) whose canary died holding it (its hold lapsed, or its
    process is provably dead); what was done, per target."""
    from opslab.canary.plan import parse_plan

    _end_holds_of_dead_processes(leases, name)
    done: list[Recovery] = []
    for lease in leases.expired(PREFIX):
        if name is not None and lease.name != name:
            continue
        intent = _intent(lease)
        if intent is None or intent.phase == "settled":
            continue  # not ours to read, or nothing left to do
        taken = leases.acquire(lease.name, holder, ttl_s=ttl_s, info=lease.info)
        if taken is None:
            continue  # someone else is recovering it (or a new canary took it)
        plan = parse_plan(intent.plan)
        outcome = _put_back(plan, intent, target_of, holder)
        if outcome.record is not None:
            append(plan, outcome.record)
        settled = intent.model_copy(update={"phase": "settled", "recovered_by": holder})
        leases.update_info(taken, settled.model_dump(mode="json"))
        leases.release(taken)
        log.warning(
            "canary %s on %s died holding it; baseline flags %s by %s",
            intent.run_key,
            plan.target.base_url,
            "restored" if outcome.restored else "NOT restored",
            holder,
        )
        done.append(outcome)
    return done


def _intent(lease: Lease) -> Intent | None:
    try:
        return Intent.model_validate(lease.info)
    except ValueError:
        return None


def _end_holds_of_dead_processes(leases: CanaryLeases, name: str | None) -> None:
    """End, in their holders' name, the live holds (all, or ``name``'s) whose process is provably dead,
    so that they are recovered now rather than once they lapse."""
    now = datetime.now(UTC)
    if name is None:
        live = leases.held(PREFIX)
    else:
        one = leases.get(name)
        live = [one] if one is not None and one.expires_at > now else []
    for lease in live:
        intent = _intent(lease)
        if intent is None or intent.phase == "settled" or intent.process is None:
            continue
        if is_dead(intent.process):
            leases.release(lease)  # fenced by holder and token: a hold taken over since is not touched


def _put_back(plan: Plan, intent: Intent, target_of: Callable[[Plan], TargetClient], holder: str) -> Recovery:
    base = {"target": plan.target.base_url, "run_key": intent.run_key, "abandoned_by": intent.holder}
    if intent.phase == "holding" or intent.restore is None:
        return Recovery(**base, restored=True)  # nothing was changed yet
    target = target_of(plan)
    try:
        ok, warnings = restore(target, intent.restore)
    finally:
        close = getattr(target, "close", None)
        if callable(close):
            close()
    what = (
        f"died mid-run (its process, {intent.process.describe()}, is gone)"
        if intent.process is not None and is_dead(intent.process)
        else "stopped renewing its hold on the target mid-run"
    )
    why = (
        f"the canary ({intent.holder}) {what}; "
        f"{'baseline flags restored' if ok else 'the baseline flags could NOT be restored'} by {holder}"
    )
    record = RunRecord(
        started_at=intent.started_at,
        finished_at=datetime.now(UTC),
        decision="INTERRUPTED",
        reason=why,
        candidate_flags=plan.candidate_flags(),
        previous_flags=intent.restore,
        restore_failed=not ok,
        interrupted=why,
        warnings=warnings,
    )
    return Recovery(**base, restored=ok, record=record, warnings=warnings)
