"""The faults the chaos server can cause, each through the target's or the dependency's admin routes only,
and the breaks it has started. A break with ``duration_s`` stops its cause by itself after that long (a
leak stops leaking); whatever the cause broke stays broken until someone fixes it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, JsonValue

from opslab.errors import InvalidInput, NotFound, OpslabError
from opslab.sandbox.admin import AdminClient
from opslab.sandbox.app import log

Params = dict[str, JsonValue]


@dataclass(frozen=True)
class Fault:
    start: Callable[[AdminClient, AdminClient, Params], None]
    stop: Callable[[AdminClient, AdminClient, Params], None]


def _switch(path: str) -> Fault:
    return Fault(
        start=lambda target, _dep, params: _post(target, path, {**params, "enabled": True}),
        stop=lambda target, _dep, _params: _post(target, path, {"enabled": False}),
    )


def _post(client: AdminClient, path: str, body: Params) -> None:
    client.post(path, body)


def _nothing(_target: AdminClient, _dep: AdminClient, _params: Params) -> None:
    return None


FAULTS: dict[str, Fault] = {
    "db_pool": _switch("/admin/faults/db_pool_leak"),
    "bad_deploy": Fault(
        start=lambda target, _d, _p: _post(target, "/admin/deploy", {"version": "v2"}),
        stop=lambda target, _d, _p: _post(target, "/admin/deploy", {"version": "v1"}),
    ),
    "latency_flag": Fault(
        start=lambda target, _d, _p: _post(target, "/admin/flags", {"new_ranking": True}),
        stop=lambda target, _d, _p: _post(target, "/admin/flags", {"new_ranking": False}),
    ),
    "memory_leak": _switch("/admin/faults/memory_leak"),
    # A crashed process cannot un-crash: only the action server's restart-dependency repairs it.
    "dependency_outage": Fault(start=lambda _t, dep, _p: _post(dep, "/admin/crash", {}), stop=_nothing),
    "traffic_spike": _switch("/admin/faults/traffic_spike"),
    "none": Fault(start=_nothing, stop=_nothing),
}
FAULT_NAMES: tuple[str, ...] = tuple(FAULTS)


def _fault(name: str) -> Fault:
    spec = FAULTS.get(name)
    if spec is None:
        raise NotFound(
            f"fault: no fault {name!r}",
            details={"errors": [{"field": "fault", "message": "unknown fault"}], "known": list(FAULT_NAMES)},
        )
    return spec


class Break(BaseModel):
    id: str
    fault: str
    params: Params
    started_at: datetime
    ends_at: datetime | None
    status: Literal["active", "stopped"]
    stopped_at: datetime | None = None
    stopped_by: Literal["request", "timer"] | None = None


class Breaks:
    """The breaks started by one chaos server, and their timers."""

    def __init__(self, target: AdminClient, dependency: AdminClient) -> None:
        self.target, self.dependency = target, dependency
        self._breaks: dict[str, Break] = {}
        self._timers: dict[str, threading.Timer] = {}
        self._lock = threading.Lock()

    def start(self, fault: str, *, duration_s: float | None, params: Params) -> Break:
        spec = _fault(fault)
        reassert = params.get("reassert_s")
        if reassert is not None and not (isinstance(reassert, int | float) and 0.2 <= reassert <= 3600):
            raise InvalidInput.for_field("params.reassert_s", "expected seconds between 0.2 and 3600")
        params = {k: v for k, v in params.items() if k != "reassert_s"}
        spec.start(self.target, self.dependency, params)  # a refusal raises: no break is recorded
        now = datetime.now(UTC)
        ends = now + timedelta(seconds=duration_s) if duration_s else None
        brk = Break(
            id=uuid.uuid4().hex[:12],
            fault=fault,
            params=params,
            started_at=now,
            ends_at=ends,
            status="active",
        )
        with self._lock:
            self._breaks[brk.id] = brk
            if duration_s:
                timer = threading.Timer(duration_s, self._expire, args=(brk.id,))
                timer.daemon = True
                self._timers[brk.id] = timer
                timer.start()
        if isinstance(reassert, int | float):
            # A cause that comes back after a fix (a config push that keeps re-applying itself).
            threading.Thread(target=self._reassert, args=(brk.id, spec, float(reassert)), daemon=True).start()
        return brk

    def _reassert(self, break_id: str, spec: Fault, every_s: float) -> None:
        while True:
            time.sleep(every_s)
            with self._lock:
                brk = self._breaks.get(break_id)
            if brk is None or brk.status != "active":
                return
            try:
                spec.start(self.target, self.dependency, brk.params)
                with self._lock:
                    stopped = self._breaks[break_id].status != "active"
                if stopped:  # stopped while this re-applied it: its stop may have landed first
                    spec.stop(self.target, self.dependency, brk.params)
            except OpslabError as exc:
                log.warning("re-applying break %s: %s", break_id, exc.message)

    def stop(
        self, break_id: str, *, fault: str | None = None, by: Literal["request", "timer"] = "request"
    ) -> Break:
        with self._lock:
            brk = self._breaks.get(break_id)
            if brk is None or (fault is not None and brk.fault != fault):
                raise NotFound(f"id: no break {break_id!r}", details={"field": "id"})
            if brk.status == "stopped":
                return brk
            timer = self._timers.pop(break_id, None)
            brk = brk.model_copy(
                update={"status": "stopped", "stopped_at": datetime.now(UTC), "stopped_by": by}
            )
            self._breaks[break_id] = brk
        if timer is not None and by == "request":
            timer.cancel()
        FAULTS[brk.fault].stop(self.target, self.dependency, brk.params)
        return brk

    def stop_fault(self, fault: str) -> list[Break]:
        """Stop every active break of ``fault``: what an experiment's rollback asks, as it does not know the
        ids its method's breaks were given."""
        _fault(fault)
        with self._lock:
            active = [b.id for b in self._breaks.values() if b.fault == fault and b.status == "active"]
        return [self.stop(break_id, fault=fault) for break_id in active]

    def _expire(self, break_id: str) -> None:
        try:
            self.stop(break_id, by="timer")
        except OpslabError as exc:  # the target may be gone by then: the break is stopped all the same
            log.warning("stopping break %s at its end: %s", break_id, exc.message)

    def list(self) -> list[Break]:
        with self._lock:
            return sorted(self._breaks.values(), key=lambda b: b.started_at)

    def close(self) -> None:
        with self._lock:
            timers, self._timers = list(self._timers.values()), {}
        for timer in timers:
            timer.cancel()
